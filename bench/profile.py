"""Optional py-spy sampling of the server processes during each measured window (`--profile web,worker`).

py-spy (`pip install py-spy` into the venv) writes collapsed stacks; the summary keeps the top frames by
self time (where the CPU went) and by total time (which calls it went through). Files land in
bench/results/profiles/ (git-ignored by bench/results/.gitignore).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["TARGETS", "scenario", "Profiler", "summarize"]

TARGETS: set[str] = set()  # process names to profile: "web", "worker"
OUT_DIR = Path(__file__).parent / "results" / "profiles"
_state = {"scenario": "bench", "n": 0}
_LINE = re.compile(r" \(([^()]*):\d+\)$")
# Leaves where a thread waits rather than runs (py-spy cannot always tell): counted apart as idle.
_IDLE = ("select (selectors.py:", "_connection_worker_thread (aiosqlite/core.py:59)", "wait (threading.py:")


def scenario(name: str) -> None:
    _state["scenario"] = name
    _state["n"] = 0


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if name in TARGETS}
        self._running: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(self) -> None:
        binary = _py_spy()
        if not self._pids:
            return
        if binary is None:
            print("bench: --profile needs py-spy (pip install py-spy)", file=sys.stderr)
            return
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        _state["n"] += 1
        for name, pid in self._pids.items():
            out = OUT_DIR / f"{_state['scenario']}-{_state['n']}-{name}.txt"
            process = subprocess.Popen(
                [binary, "record", "-p", str(pid), "-o", str(out), "--format", "raw", "-r", "200", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self._running[name] = (process, out)

    def stop(self) -> dict[str, dict]:
        summaries = {}
        for name, (process, out) in self._running.items():
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            if out.exists():
                summary = summarize(out)
                summaries[name] = summary
                (out.with_suffix(".top.txt")).write_text(_render(name, summary))
                print(_render(name, summary), file=sys.stderr)
        self._running.clear()
        return summaries


def summarize(path: Path, top: int = 20) -> dict:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in _IDLE):
            idle += n
            continue
        samples += n
        own[frames[-1]] += n
        for frame in {_LINE.sub(r" (\1)", f) for f in frames}:
            total[frame] += n
    return {
        "samples": samples,
        "idle_samples": idle,
        "self": [(f, round(100 * n / samples, 1)) for f, n in own.most_common(top)] if samples else [],
        "total": [(f, round(100 * n / samples, 1)) for f, n in total.most_common(top)] if samples else [],
        "file": str(path),
    }


def _render(name: str, summary: dict) -> str:
    lines = [f"== py-spy {name}: {summary['samples']} busy samples, {summary['idle_samples']} idle ({summary['file']})",
             "-- top self:"]
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in summary["self"]]
    lines.append("-- top total:")
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in summary["total"]]
    return "\n".join(lines) + "\n"
