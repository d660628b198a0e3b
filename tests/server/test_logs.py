"""One JSON line per record, whatever the fields hold."""

from __future__ import annotations

import io
import json
import logging

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from webhook.server.logs import (
    FIELDS,
    GunicornLogger,
    JsonFormatter,
    SlowClientFilter,
    fields,
    gunicorn_logconfig,
    info_line,
)


def _record(**values: object) -> logging.LogRecord:
    record = logging.LogRecord("podgate.admission", logging.INFO, __file__, 1, "admission", (), None)
    setattr(record, FIELDS, values)
    return record


def test_a_record_is_one_json_line_with_its_fields() -> None:
    line = JsonFormatter().format(_record(uid="u-1", durationMs=0.5, policies=["a", "b"]))
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["logger"], parsed["message"]) == (
        "info",
        "podgate.admission",
        "admission",
    )
    assert (parsed["uid"], parsed["durationMs"], parsed["policies"]) == ("u-1", 0.5, ["a", "b"])


def test_values_json_cannot_carry_are_written_as_text() -> None:
    parsed = json.loads(JsonFormatter().format(_record(big=2**70, path=frozenset({"x"}), obj=object())))
    assert parsed["big"] == 2**70
    assert parsed["path"].startswith("frozenset") and parsed["obj"].startswith("<object")


class Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _json_logger(name: str, stream: io.StringIO) -> logging.Logger:
    """A logger configured as `podgate serve` configures podgate's (logs.configure)."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SlowClientFilter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def test_info_line_writes_what_logging_would_in_one_write() -> None:
    values = {"uid": "u-1", "policies": ["a"], "durationMs": 0.25, "dryRun": False}
    direct, logged = Writes(), Writes()
    info_line(_json_logger("podgate.test.direct", direct), "admission", values)
    _json_logger("podgate.test.logged", logged).info("admission", extra=fields(**values))
    one, other = json.loads(direct.getvalue()), json.loads(logged.getvalue())
    assert direct.getvalue().endswith("}\n") and direct.writes == 1
    assert list(one) == list(other)  # the same members, in the same order
    assert {**one, "time": "", "logger": ""} == {**other, "time": "", "logger": ""}
    assert one["logger"] == "podgate.test.direct"


def test_info_line_is_an_ordinary_record_where_the_logger_is_not_plain_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("podgate.test.captured")  # propagates to pytest's capturing handler
    with caplog.at_level(logging.INFO, logger="podgate.test.captured"):
        info_line(logger, "admission", {"uid": "u-2"})
    (record,) = caplog.records
    assert (record.getMessage(), getattr(record, FIELDS)) == ("admission", {"uid": "u-2"})


def test_info_line_respects_the_level() -> None:
    stream = Writes()
    logger = _json_logger("podgate.test.quiet", stream)
    logger.setLevel(logging.WARNING)
    info_line(logger, "admission", {"uid": "u-3"})
    assert stream.writes == 0


class Untouchable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the access log read {name}")


def test_gunicorn_s_access_log_does_nothing() -> None:
    """gunicorn builds each request's access-log fields whenever a log configuration is given."""
    config = Config()
    config.set("logconfig_dict", gunicorn_logconfig())
    # Not set up: that would apply the configuration to this process's loggers.
    logger = GunicornLogger.__new__(GunicornLogger)
    logger.cfg = config
    with pytest.raises(AssertionError, match="the access log read"):
        glogging.Logger.access(logger, Untouchable(), Untouchable(), Untouchable(), Untouchable())
    assert logger.access(Untouchable(), Untouchable(), Untouchable(), Untouchable()) is None
