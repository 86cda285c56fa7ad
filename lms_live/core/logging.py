"""Logging: JSON lines in production, readable lines in development, request id on every line.

The request id lives in a context variable set by the request middleware (and by socket and
task handlers), so any log call made while serving a request carries it. Nothing here logs
headers, bodies or query strings: those may hold credentials.

Lines are written in batches (like nginx's buffered access log): at the latest every 0.5 s,
at once for warnings and errors, and at exit. A write and flush per line cost about a third
of the throughput of a small endpoint.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

from lms_live.settings import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
FLUSH_INTERVAL = 0.5
MAX_BUFFER = 64 * 1024


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (if the record factory has not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class _CachedTime:
    """`formatTime` in UTC ISO 8601, formatting the date part once per second."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int(record.msecs):03d}Z"


class TextFormatter(_CachedTime, logging.Formatter):
    """Readable lines for development."""


# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonLineFormatter(_CachedTime, logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, then extra fields.

    Written here rather than taken from python-json-logger, and encoded with orjson: the
    access log runs on every request, and that pair costs a quarter of the per-line time."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if isinstance(record, AccessRecord):
            entry |= {
                "method": record.method,
                "route": record.route,
                "status": record.status,
                "duration_ms": record.duration_ms,
                "client": record.client,
            }
        else:
            for key, value in record.__dict__.items():
                if key not in _STANDARD and not key.startswith("_"):
                    entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes batched lines (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._buffer: list[str] = []
        self._size = 0
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            self._buffer.append(line)
            self._size += len(line)
            if record.levelno >= logging.WARNING or self._size >= MAX_BUFFER:
                self._write()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _write(self) -> None:
        if self._buffer:
            data = "".join(self._buffer)
            self._buffer.clear()
            self._size = 0
            self.stream.write(data)
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _flush_periodically(self) -> None:
        while not self._stopping.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except (OSError, ValueError):  # the stream was closed under us: stop quietly
                return

    def close(self) -> None:
        self._stopping.set()
        atexit.unregister(self.close)
        with contextlib.suppress(OSError, ValueError):  # stream already closed
            self.flush()
        super().close()


class AccessRecord(logging.LogRecord):
    """One access-log line. Built directly (no caller lookup, no path parsing, message already
    formatted): LogRecord's general constructor was a third of the access log's cost."""

    def __init__(
        self,
        name: str,
        level: int,
        *,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        client: str,
        request_id: str,
    ) -> None:
        now = time.time()
        self.name = name
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.msg = f"{method} {route} {status} {duration_ms:.1f}ms"
        self.args = None
        self.created = now
        self.msecs = (now - int(now)) * 1000
        self.relativeCreated = (now - _STARTED) * 1000
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.pathname = self.filename = self.module = self.funcName = ""
        self.lineno = 0
        self.thread = self.threadName = self.process = self.processName = None
        self.taskName = None
        self.request_id = request_id
        self.method = method
        self.route = route
        self.status = status
        self.duration_ms = duration_ms
        self.client = client


_STARTED = time.time()


def _install_record_factory() -> None:
    """Stamp the request id when a record is created, so every handler (and caplog) sees it."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_lms_live", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    factory._lms_live = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(settings: Settings) -> None:
    """Install one stdout handler on the root logger (idempotent)."""
    _install_record_factory()
    # Records need none of these, and looking them up costs on every line (the access log
    # runs per request): caller frame, thread, process and multiprocessing names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter())
    if settings.json_logs:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(TextFormatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_lms_live", False)]:
        root.removeHandler(old)
        old.close()
    handler._lms_live = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in (
        "aiohttp.access",
        "engineio.server",
        "socketio.server",
        "taskiq.redis_schedule_source",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    atexit.register(handler.close)
