"""What the measured windows record besides the scenario's own figures: CPU per process (and the rest of
the machine), Redis commands per action (`INFO commandstats`), and optional py-spy profiles."""

from __future__ import annotations

import os
import time

import psutil
from redis import Redis

from bench.profile import Profiler
from bench.stack import GC_STATS, Stack

__all__ = ["CpuMeter", "RedisCalls"]


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
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> None:
        self._wall0 = time.time()
        self._t0 = time.perf_counter()
        self._start = {n: self._cpu(p) for n, p in self._procs.items()}
        self._start["machine"] = self._machine_busy()
        self._profiler.start()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        out = {n: round(100 * (self._cpu(p) - self._start[n]) / elapsed, 1) for n, p in self._procs.items()}
        ours = sum(out.values())
        machine = 100 * (self._machine_busy() - self._start["machine"]) / elapsed
        # Anything else running on the machine at the same time (other users' jobs) skews the figures.
        out["other processes"] = round(max(0.0, machine - ours), 1)
        out[f"machine total of {os.cpu_count() or 1} cores"] = round(machine, 1)
        self._profiler.stop()
        GC_STATS["windows"].append((self._wall0, time.time()))
        return out


class RedisCalls:
    """Redis commands run between `start()` and `stop()`, from `INFO commandstats` of the private server."""

    def __init__(self, stack: Stack) -> None:
        self._redis = Redis.from_url(stack.redis_url)
        self._start: dict[str, int] = {}

    def _calls(self) -> dict[str, int]:
        stats = self._redis.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}

    def start(self) -> None:
        self._start = self._calls()

    def stop(self, per: int) -> dict[str, float]:
        """Calls per `per` (e.g. per action), commands with at least 0.05 per unit, most frequent first."""
        end = self._calls()
        self._redis.close()
        delta = {name: calls - self._start.get(name, 0) for name, calls in end.items()}
        rows = {name: round(calls / max(per, 1), 2) for name, calls in delta.items() if calls / max(per, 1) >= 0.05}
        rows = dict(sorted(rows.items(), key=lambda item: -item[1]))
        rows["total"] = round(sum(delta.values()) / max(per, 1), 1)
        return rows
