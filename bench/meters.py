"""What the measured windows record besides the scenario's own figures: CPU per process (and the rest of
the machine), Redis commands per action (`INFO commandstats`) and round trips (the redis-server's read
system calls), and optional py-spy profiles."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import psutil
from redis import Redis

from bench.profile import Profiler
from bench.stack import GC_STATS, Stack

__all__ = ["CpuMeter", "RedisCalls", "cpu_seconds"]


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds the process has used so far."""
    times = process.cpu_times()
    return times.user + times.system


class CpuMeter:
    """CPU used by the stack's processes and by this (client) process between `start()` and `stop()`,
    in percent of one core (the machine has `os.cpu_count()` of them)."""

    def __init__(self, stack: Stack, names: tuple[str, ...] | None = None) -> None:
        names = names or tuple(n for n in ("web", "worker", "redis") if n in stack.processes)
        self._procs = {n: psutil.Process(stack.pid(n)) for n in names}
        self._procs["client"] = psutil.Process()
        self._profiler = Profiler({n: p.pid for n, p in self._procs.items() if n != "client"})
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> None:
        self._wall0 = time.time()
        self._t0 = time.perf_counter()
        self._start = {n: cpu_seconds(p) for n, p in self._procs.items()}
        self._seconds: dict[str, float] = {}
        self._start["machine"] = self._machine_busy()
        self._profiler.start()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        self._seconds = {n: cpu_seconds(p) - self._start[n] for n, p in self._procs.items()}
        out = {n: round(100 * used / elapsed, 1) for n, used in self._seconds.items()}
        ours = sum(out.values())
        machine = 100 * (self._machine_busy() - self._start["machine"]) / elapsed
        # Anything else running on the machine at the same time (other users' jobs) skews the figures.
        out["other processes"] = round(max(0.0, machine - ours), 1)
        out[f"machine total of {os.cpu_count() or 1} cores"] = round(machine, 1)
        self._profiler.stop()
        GC_STATS["windows"].append((self._wall0, time.time()))
        return out

    @property
    def seconds(self) -> dict[str, float]:
        """CPU seconds per process in the last window (after `stop()`)."""
        return dict(self._seconds)


class RedisCalls:
    """Redis commands run between `start()` and `stop()`, from `INFO commandstats` of the private server
    (commands that Lua scripts run count under their own names, the script under `evalsha`).

    Also, when the server is a process of the stack, its round trips: the `read()` system calls of the
    redis-server process (`syscr` of /proc/PID/io). Redis reads a client's socket once per readable event,
    so a pipeline or a script costs one read, a blocking command one more when it wakes; with no persistence
    (`--save ""`) the server reads nothing else. `round_trips` holds the count of the last window.
    """

    def __init__(self, stack: Stack) -> None:
        self._redis = Redis.from_url(stack.redis_url)
        self._start: dict[str, int] = {}
        self._io = Path(f"/proc/{stack.pid('redis')}/io") if "redis" in stack.processes else None
        self._reads0 = 0
        self._processed0 = 0
        self.round_trips: int | None = None
        self.commands_processed = 0  # INFO stats total_commands_processed over the window

    def _reads(self) -> int | None:
        if self._io is None:
            return None
        try:
            for line in self._io.read_text().splitlines():
                if line.startswith("syscr:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def _processed(self) -> int:
        return int(cast(dict, self._redis.info("stats"))["total_commands_processed"])

    def _calls(self) -> dict[str, int]:
        stats = cast(dict, self._redis.info("commandstats"))
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}

    def start(self) -> None:
        self._start = self._calls()
        self._processed0 = self._processed()
        self._reads0 = self._reads() or 0

    def stop(self, per: int) -> dict[str, float]:
        """Calls per `per` (e.g. per action), commands with at least 0.05 per unit, most frequent first."""
        reads = self._reads()
        end = self._calls()
        self.commands_processed = self._processed() - self._processed0
        self.round_trips = None if reads is None else reads - self._reads0
        self._redis.close()
        delta = {name: calls - self._start.get(name, 0) for name, calls in end.items()}
        rows = {name: round(calls / max(per, 1), 2) for name, calls in delta.items() if calls / max(per, 1) >= 0.05}
        rows = dict(sorted(rows.items(), key=lambda item: -item[1]))
        rows["total"] = round(sum(delta.values()) / max(per, 1), 1)
        return rows
