"""Logging: JSON lines in production, readable lines in development, request id on every line.

The request id lives in a context variable set by the request middleware (and by socket and
task handlers), so any log call made while serving a request carries it. Nothing here logs
headers, bodies or query strings: those may hold credentials.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from lms_live.settings import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
_JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (if the record factory has not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


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
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter())
    if settings.json_logs:
        handler.setFormatter(
            JsonFormatter(_JSON_FORMAT, rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_lms_live", False)]:
        root.removeHandler(old)
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
