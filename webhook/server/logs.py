"""Structured logs: one JSON object per line, with the fields a request or an error is about."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from webhook.server.tls import SlowClient

LOGGER = "podgate"
# The attribute of a LogRecord that carries its structured fields (set through `extra=`).
FIELDS = "podgate_fields"


def fields(**values: Any) -> dict[str, Any]:
    """The `extra=` argument that attaches structured fields to one log call."""
    return {FIELDS: values}


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line: time, level, logger, message, then its structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, {}))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            # Server-side only: the traceback goes to the log as one string, never to the client.
            line["traceback"] = "".join(traceback.format_exception(error)).rstrip()
        try:
            # One line per review: orjson writes it several times faster than the json module.
            return orjson.dumps(line, default=str).decode()
        except orjson.JSONEncodeError:  # an integer past 64 bits, say: the json module copes
            return json.dumps(line, default=str, separators=(",", ":"))


class SlowClientFilter(logging.Filter):
    """gunicorn reports a client cut off by the read timeout as a socket error with a traceback.

    That is a client problem, not a server one: one warning line with the peer instead, so a
    slowloris costs a line per connection, not a traceback per connection at error level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, SlowClient):
            record.msg, record.args = "slow client cut off", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
            setattr(record, FIELDS, {"peer": error.peer, "readTimeout": error.seconds})
        return True


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send podgate's and gunicorn's logs to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SlowClientFilter())
    for name in (LOGGER, "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def gunicorn_logconfig(level: str = "INFO") -> dict[str, Any]:
    """A `logconfig_dict` for gunicorn: its error log in the same JSON lines, its access log off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"slow_clients": {"()": f"{__name__}.SlowClientFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["slow_clients"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            # One line per admission comes from the app, with the review's fields; no second access line.
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            LOGGER: {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
