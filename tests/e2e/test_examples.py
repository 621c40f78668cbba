"""The clients in `examples/` (Python, and Node when `node` is installed) against a real stack: each prints
the answer's chunks as they stream and exits 0 on the final message, 1 on an error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import AI_NOT_PERMITTED
from tests._stack import Stack

pytestmark = [pytest.mark.sqlite_stack, pytest.mark.timeout(120)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLIENTS = [
    pytest.param([sys.executable, str(EXAMPLES / "chat.py")], id="python"),
    pytest.param(["node", str(EXAMPLES / "chat.mjs")], id="node",
                 marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")),
]


def start(client: list[str], stack: Stack, user: str, question: str) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SWITCHBOARD_URL": stack.url, "SWITCHBOARD_TOKEN": stack.token(user)}
    return subprocess.Popen([*client, question], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_client_prints_the_chunks_as_they_come_and_exits_0(client: list[str], stack: Stack) -> None:
    # The second chunk comes 3 s after the first: the first must be on the screen while it is awaited.
    process = start(client, stack, "alice", '<response chunk_delay_ms="3000">first second</response>')
    assert process.stdout is not None
    seen = b""
    while b"first" not in seen:
        chunk = process.stdout.read1(1024)
        assert chunk, (seen, process.stderr.read() if process.stderr else b"")
        seen += chunk
    assert process.poll() is None and b"second" not in seen  # streamed, not printed at the end
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert (seen + out).decode() == "first second\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_question_exits_1_with_the_reason(client: list[str], stack: Stack) -> None:
    process = start(client, stack, "carol", "hello")  # carol holds no Duo seat
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and out == b""
    assert err.decode().strip() == f"error: {AI_NOT_PERMITTED}"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_failed_answer_exits_1(client: list[str], stack: Stack) -> None:
    # a provider's refusal (400): one call, not retried, and not counted against the model's circuit breaker
    # (5xx and timeouts are, and would fail other tests on this shared stack)
    process = start(client, stack, "alice", '<response error="400">x</response>')
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert err.decode().startswith("error: I'm sorry, I can't generate a response.")
