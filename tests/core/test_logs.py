"""JSON log lines and the `expanded_ai_logging` rule of `core.logs`."""

from __future__ import annotations

import asyncio
import json
import logging

from core.logs import JsonFormatter, expanded, expanded_logging


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
    with expanded_logging(False):
        assert expanded(prompt="secret") == {}
    with expanded_logging(True):
        assert expanded(prompt="secret", response="answer") == {"prompt": "secret", "response": "answer"}
    assert expanded(True, inputs={"content": "x"}) == {"inputs": {"content": "x"}}
    assert expanded(False, inputs={"content": "x"}) == {}


def test_expanded_logging_holds_inside_the_block_only() -> None:
    assert not expanded(x=1)
    with expanded_logging(True):
        assert expanded(x=1)
        with expanded_logging(False):
            assert not expanded(x=1)
        assert expanded(x=1)
    assert not expanded(x=1)


async def test_expanded_logging_does_not_leak_between_concurrent_jobs() -> None:
    async def job(value: bool) -> bool:
        with expanded_logging(value):
            await asyncio.sleep(0)
            return bool(expanded(x=1))

    assert await asyncio.gather(job(True), job(False), job(True)) == [True, False, True]


def test_the_time_is_the_records_own_across_seconds() -> None:
    formatter = JsonFormatter()
    times = []
    for created in (1_764_700_000.5, 1_764_700_000.999, 1_764_700_001.0, 1_764_699_999.25):
        record = logging.LogRecord("switchboard.test", logging.INFO, __file__, 1, "m", (), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        times.append(json.loads(formatter.format(record))["time"])
    assert times == ["2025-12-02T18:26:40.500Z", "2025-12-02T18:26:40.999Z", "2025-12-02T18:26:41.000Z",
                     "2025-12-02T18:26:39.250Z"]
