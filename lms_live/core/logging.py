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
from queue import Empty, SimpleQueue
from typing import Any, TextIO

import orjson

from lms_live.settings import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
FLUSH_INTERVAL = 0.5
# An access line's fields: method, route, status, duration_ms, client, request_id.
AccessFields = tuple[str, str, int, float, str, str]
MAX_BUFFER = 64 * 1024


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (if the record factory has not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def _access_message(fields: AccessFields) -> str:
    return f"{fields[0]} {fields[1]} {fields[2]} {fields[3]:.1f}ms"


class _CachedTime:
    """`formatTime` in UTC ISO 8601, formatting the date part once per second."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    _milli = -1
    _milli_stamp = ""

    def stamp(self, created: float) -> str:
        milli = int(created * 1000)
        if milli == self._milli:  # lines of the same millisecond: most under load
            return self._milli_stamp
        second = milli // 1000
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        self._milli = milli
        self._milli_stamp = stamp = f"{self._stamp}.{milli - second * 1000:03d}Z"
        return stamp


class TextFormatter(_CachedTime, logging.Formatter):
    """Readable lines for development."""

    def access_line(self, level: int, name: str, fields: AccessFields) -> str:
        """The line `format` would give the AccessRecord of these fields (same text)."""
        if self._fmt != _TEXT_FORMAT:
            return self.format(AccessRecord(name, level, fields))
        return (
            f"{self.stamp(time.time())} {logging.getLevelName(level):<7} {name} "
            f"[{fields[5]}] {_access_message(fields)}"
        )


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

    def access_line(self, level: int, name: str, fields: AccessFields) -> str:
        """The line `format` would give the AccessRecord of these fields (same keys)."""
        method, route, status, duration_ms, client, request_id = fields
        return orjson.dumps(
            {
                "time": self.stamp(time.time()),
                "level": logging.getLevelName(level),
                "logger": name,
                "request_id": request_id,
                "message": _access_message(fields),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
            }
        ).decode()


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes batched lines (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        # Lines wait in a SimpleQueue (thread-safe without a Python-level lock: the access
        # log puts one per request) and are written, in order, by whichever thread flushes.
        self._pending: SimpleQueue[str] = SimpleQueue()
        self._size = 0  # characters queued since the last write; a trigger, not a count
        self._writing = threading.Lock()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, level: int) -> None:
        """Queue one formatted line; write at once from WARNING up or when enough waits."""
        self._pending.put(line + self.terminator)
        self._size += len(line)
        if level >= logging.WARNING or self._size >= MAX_BUFFER:
            self._write()

    def _write(self) -> None:
        with self._writing:
            self._size = 0
            lines: list[str] = []
            take = self._pending.get_nowait
            with contextlib.suppress(Empty):
                while True:
                    lines.append(take())
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
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

    def __init__(self, name: str, level: int, fields: AccessFields) -> None:
        method, route, status, duration_ms, client, request_id = fields
        now = time.time()
        self.name = name
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.msg = _access_message(fields)
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
_ACCESS = logging.getLogger("lms_live.http")


def access_log(level: int, fields: AccessFields) -> None:
    """Log one access line on `lms_live.http`: method, route, status, duration_ms, client,
    request_id.

    When the only handler on the way is the one `configure_logging` installed (production and
    `lms-live serve`), the line is formatted and buffered directly: the logging module's
    dispatch (logger and handler filters, handler lookup up the tree, locks, a LogRecord of
    25 attributes) was half of the line's cost. Anything else attached (pytest's caplog, an
    extra handler, a filter) gets an AccessRecord through the normal path."""
    if not _ACCESS.isEnabledFor(level):
        return
    handlers = logging.root.handlers
    if (
        len(handlers) == 1
        and type(handler := handlers[0]) is BufferedStreamHandler
        and type(formatter := handler.formatter) in _DIRECT_FORMATTERS
        and level >= handler.level
        and not _ACCESS.handlers
        and not _ACCESS.filters
        and not logging.root.filters
        and _ACCESS.propagate
    ):
        line = formatter.access_line(level, _ACCESS.name, fields)  # type: ignore[union-attr]
        handler.write_line(line, level)
        return
    _ACCESS.handle(AccessRecord(_ACCESS.name, level, fields))


_DIRECT_FORMATTERS = (JsonLineFormatter, TextFormatter)


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
