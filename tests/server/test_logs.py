"""One JSON line per record, whatever the fields hold."""

from __future__ import annotations

import json
import logging

from webhook.server.logs import FIELDS, JsonFormatter


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
