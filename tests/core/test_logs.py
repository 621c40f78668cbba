"""JSON log lines and the `expanded_ai_logging` rule of `core.logs`."""

from __future__ import annotations

import json
import logging

from core.flags import pushed_flags
from core.logs import JsonFormatter, expanded


def format_record(message: str, *args: object, exc: bool = False, **extra: object) -> dict:
    record = logging.LogRecord("switchboard.test", logging.INFO, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_a_line_is_one_json_object_with_the_extra_fields_on_top() -> None:
    entry = format_record("worker_enqueued %s", "now", request_id="r-1", feature="chat", duration_s=0.25, obj=object())
    assert entry["message"] == "worker_enqueued now" and entry["level"] == "info" and entry["logger"] == "switchboard.test"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert (entry["request_id"], entry["feature"], entry["duration_s"]) == ("r-1", "chat", 0.25)
    assert entry["obj"].startswith("<object")  # anything not JSON is logged as its str()
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_an_exception_is_one_field() -> None:
    entry = format_record("completion failed", exc=True)
    assert "ValueError: boom" in entry["exception"]


def test_user_content_is_logged_only_with_expanded_ai_logging() -> None:
    assert expanded(prompt="secret") == {}
    with pushed_flags({"expanded_ai_logging": False}):
        assert expanded(prompt="secret") == {}
    with pushed_flags({"expanded_ai_logging": True}):
        assert expanded(prompt="secret", response="answer") == {"prompt": "secret", "response": "answer"}
    assert expanded(True, inputs={"content": "x"}) == {"inputs": {"content": "x"}}
    assert expanded(False, inputs={"content": "x"}) == {}
