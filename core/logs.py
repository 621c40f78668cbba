"""Structured logs (SPEC §10): one JSON object a line on stderr, and the privacy rule of the LLM log.

`switchboard run` on a terminal shows the same records as readable lines instead (`TextFormatter`):
`12:00:01 INFO completion_service_performed request_id=… feature=chat model=mock`; JSON stays the default
of `web` and `worker` (`SWITCHBOARD_LOG_FORMAT` chooses either way).

A log call's `extra` fields become top-level keys next to `time`, `level`, `logger` and `message`. The LLM
log's events (`ai_action_mutation`, `worker_enqueued`, `performing_request`, `response_received`, …) carry
request id, feature, model, timings and token counts. User input, prompts and model output are added only
through `expanded(...)`, which returns them only when the `expanded_ai_logging` flag is on for the user
the action belongs to (GitLab's `log_conditional_info`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure", "expanded", "expanded_logging", "EXPANDED_FLAG"]

EXPANDED_FLAG = "expanded_ai_logging"

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _default(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    _second = -1
    _second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        """`2026-12-02T17:35:01.123Z`; the text up to the second is made once per second."""
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _text_value(value: object) -> str:
    """A string bare when it can be, else quoted with JSON's escapes; anything else as compact JSON."""
    if not isinstance(value, str):
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    if value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return orjson.dumps(value).decode()  # one record stays one line


class TextFormatter(logging.Formatter):
    """One readable line a record for a person at a terminal: local time, level, message, then the fields
    of `extra` as `key=value` (the same fields the JSON lines carry, so nothing is lost but the date)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [time.strftime("%H:%M:%S", time.localtime(record.created)), record.levelname, record.getMessage()]
        parts += [f"{name}={_text_value(value)}" for name, value in record.__dict__.items()
                  if name not in _STANDARD and name != "color_message"]  # uvicorn's message with ANSI colours
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(*, json: bool, level: int = logging.INFO) -> None:
    """Root logging for a process: JSON lines, or readable text lines (`TextFormatter`), on stderr.

    Records skip what neither format writes (the Logging HOWTO's "Optimization"): the caller's file, line
    and function (a walk up the stack per record), and the thread's and process's names and IDs."""
    logging._srcfile = None  # the documented switch for caller information
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)


def expanded(enabled: bool | None = None, **fields: object) -> dict[str, object]:
    """`fields` (user input, prompts, model output) when expanded AI logging is on, else nothing.

    `enabled` is the flag's value for the action's user when the caller knows it (the web process, from
    the flags it resolved); in a worker job it is the value `expanded_logging` set for the job."""
    if enabled is None:
        enabled = _EXPANDED.get()
    return fields if enabled else {}


# Whether the job being run logs expanded fields: the `expanded_ai_logging` flag pushed with it.
_EXPANDED: ContextVar[bool] = ContextVar("switchboard_expanded_logging", default=False)


@contextmanager
def expanded_logging(enabled: bool) -> Iterator[None]:
    """Make `expanded()` log its fields (or not) for the duration of the block (one job)."""
    token = _EXPANDED.set(enabled)
    try:
        yield
    finally:
        _EXPANDED.reset(token)
