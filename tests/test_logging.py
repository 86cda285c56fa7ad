"""Log lines: batched writes that never lose a warning, JSON fields, UTC timestamps."""

from __future__ import annotations

import io
import json
import logging
import time

from lms_live.core.logging import (
    AccessRecord,
    BufferedStreamHandler,
    JsonLineFormatter,
    TextFormatter,
)


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_info_lines_are_batched_and_flushed_within_the_interval() -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(TextFormatter("%(message)s"))
    logger = _logger(handler)
    try:
        logger.info("first")
        logger.info("second")
        assert stream.getvalue() == ""
        deadline = time.monotonic() + 3
        while "second" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream.getvalue() == "first\nsecond\n"
    finally:
        handler.close()


def test_warnings_flush_everything_at_once_and_close_flushes() -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    logger = _logger(handler)
    logger.info("before")
    logger.warning("trouble")
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"
    logger.info("last words")
    handler.close()
    assert stream.getvalue().endswith("INFO last words\n")


def test_json_lines_carry_extra_fields_and_utc_time() -> None:
    record = logging.makeLogRecord(
        {
            "name": "lms_live.http",
            "levelno": 20,
            "levelname": "INFO",
            "msg": "GET %s",
            "args": ("/x",),
            "route": "/x",
            "status": 200,
            "request_id": "rid",
            "created": 0.25,
            "msecs": 250.0,
        }
    )
    line = json.loads(JsonLineFormatter().format(record))
    assert line["message"] == "GET /x"
    assert line["level"] == "INFO"
    assert line["logger"] == "lms_live.http"
    assert line["request_id"] == "rid"
    assert line["route"] == "/x"
    assert line["status"] == 200
    assert line["time"] == "1970-01-01T00:00:00.250Z"
    assert "args" not in line
    assert "msg" not in line


def test_json_lines_include_the_traceback_of_errors() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord(
            {
                "name": "x",
                "levelno": 40,
                "levelname": "ERROR",
                "msg": "failed",
                "exc_info": sys.exc_info(),
            }
        )
    line = json.loads(JsonLineFormatter().format(record))
    assert "ValueError: boom" in line["exception"]


def test_direct_access_lines_equal_the_formatted_records() -> None:
    """The access log's direct path (no LogRecord) writes what formatting its record would."""
    fields = ("GET", "/api/v1/health", 200, 1.23, "10.0.0.1", "rid-1")
    record = AccessRecord("lms_live.http", logging.INFO, fields)
    json_formatter = JsonLineFormatter()
    direct = json.loads(json_formatter.access_line(logging.INFO, "lms_live.http", fields))
    formatted = json.loads(json_formatter.format(record))
    assert direct.pop("time")[:16] == formatted.pop("time")[:16]
    assert direct == formatted
    assert direct["message"] == "GET /api/v1/health 200 1.2ms"
    text_formatter = TextFormatter(
        "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
    )
    direct_text = text_formatter.access_line(logging.INFO, "lms_live.http", fields)
    formatted_text = text_formatter.format(record)
    assert direct_text.split(" ", 1)[1] == formatted_text.split(" ", 1)[1]
    assert direct_text.endswith("INFO    lms_live.http [rid-1] GET /api/v1/health 200 1.2ms")


def test_timestamps_of_one_millisecond_are_shared_and_of_the_next_are_new() -> None:
    formatter = JsonLineFormatter()
    base = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert formatter.stamp(base + 0.0121) == "2027-01-15T08:00:00.012Z"
    assert formatter.stamp(base + 0.0129) == "2027-01-15T08:00:00.012Z"
    assert formatter.stamp(base + 0.0131) == "2027-01-15T08:00:00.013Z"
    assert formatter.stamp(base + 1.0001) == "2027-01-15T08:00:01.000Z"
    assert formatter.stamp(base + 0.999) == "2027-01-15T08:00:00.999Z"
