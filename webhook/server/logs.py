"""Structured logs: one JSON object per line, with the fields a request or an error is about."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from gunicorn import glogging

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
        line = _head(record.created, record.levelname.lower(), record.name, record.getMessage())
        line.update(getattr(record, FIELDS, {}))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            # Server-side only: the traceback goes to the log as one string, never to the client.
            line["traceback"] = "".join(traceback.format_exception(error)).rstrip()
        return _dumps(line)


def _head(created: float, level: str, logger: str, message: str) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }


def _dumps(line: dict[str, Any]) -> str:
    try:
        # One line per review: orjson writes it several times faster than the json module.
        return orjson.dumps(line, default=str).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits, say: the json module copes
        return json.dumps(line, default=str, separators=(",", ":"))


def info_line(logger: logging.Logger, message: str, values: Mapping[str, Any]) -> None:
    """`logger.info(message, extra=fields(**values))`, in one JSON dump and one write where it can be.

    The admission line is written for every review: logging's record, caller lookup, formatter and
    handler calls cost as much again as the line itself. When the record would reach exactly one
    stream through JsonFormatter (as `podgate serve` configures it), the same line goes there directly,
    under the handler's lock; anywhere else (a test capturing records, another handler) it is logged.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _only_json_stream(logger)
    if handler is None:
        logger.info(message, extra=fields(**values))
        return
    line = _head(time.time(), "info", logger.name, message)
    line.update(values)
    text = _dumps(line) + handler.terminator
    with handler.lock:  # type: ignore[union-attr]
        try:
            handler.stream.write(text)
            handler.stream.flush()
        except Exception:  # as a handler that fails does: report on stderr, carry on
            handler.handleError(logging.makeLogRecord({"msg": message, "name": logger.name}))


def _only_json_stream(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The one handler an INFO record of `logger` would reach, if it is a plain stream with JsonFormatter
    and no filter that could change such a record (SlowClientFilter only touches slow-client errors)."""
    if logger.filters:
        return None
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (
        type(handler) is not logging.StreamHandler
        or not isinstance(handler.formatter, JsonFormatter)
        or handler.level > logging.INFO
        or not all(isinstance(f, SlowClientFilter) for f in handler.filters)
    ):
        return None
    return handler


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


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with its access log off for real.

    gunicorn builds every request's access-log fields (a dozen atoms, the request's headers) whenever a
    logging configuration is given, even with no access log to write them to: 6 to 9 % of a worker's
    Python time under the apiserver's load (benchmarks/BENCHMARKS.md, issue 16). podgate logs each review
    itself, so there is no access log at all.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


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
