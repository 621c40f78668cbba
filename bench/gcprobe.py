"""Run the `switchboard` CLI with Python's garbage-collector pauses recorded (`--gc-stats`).

    python -m bench.gcprobe OUT.json web --port N      (any `switchboard` arguments after OUT.json)

Every collection is timed through `gc.callbacks`; at exit the totals per generation (count, total and
max pause, objects tracked at the end) and every collection (wall-clock start, generation, pause) are
written to OUT.json; the bench keeps those inside its measured windows. A diagnostic only: the product is unchanged.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import sys
import threading
import time

__all__ = ["main", "in_windows"]


def in_windows(report: dict, windows: list[tuple[float, float]]) -> dict:
    """GC pauses of one process report that started inside the measured windows."""
    inside = [e for e in report.get("events", []) if any(a <= e[0] <= b for a, b in windows)]
    span = sum(b - a for a, b in windows) or 1.0
    pause_ms = sum(e[2] for e in inside)
    return {
        "process": report["process"], "collections": len(inside), "gen2": sum(1 for e in inside if e[1] == 2),
        "pause_ms": round(pause_ms, 1), "max_pause_ms": round(max((e[2] for e in inside), default=0.0), 1),
        "share_of_window_percent": round(100 * pause_ms / 1000 / span, 2),
        "tracked_objects_at_exit": report.get("tracked_objects_at_exit"),
    }


def main(argv: list[str]) -> int:
    out, args = argv[0], argv[1:]
    stats = {g: {"collections": 0, "pause_s": 0.0, "max_pause_ms": 0.0, "collected": 0} for g in range(3)}
    started: list[float] = [0.0]
    events: list[tuple[float, int, float]] = []  # (wall-clock start, generation, pause ms)
    t0 = time.perf_counter()

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - started[0]
        if len(events) < 200_000:
            events.append((round(time.time() - pause, 4), info["generation"], round(pause * 1000, 3)))
        entry = stats[info["generation"]]
        entry["collections"] += 1
        entry["pause_s"] += pause
        entry["max_pause_ms"] = max(entry["max_pause_ms"], pause * 1000)
        entry["collected"] += info.get("collected", 0)

    def dump() -> None:
        gc.callbacks.remove(callback)
        document = {
            "argv": args, "uptime_s": round(time.perf_counter() - t0, 2), "threshold": gc.get_threshold(),
            "tracked_objects_at_exit": len(gc.get_objects()),
            "events": events,
            "generations": {str(g): {**v, "pause_s": round(v["pause_s"], 4), "max_pause_ms": round(v["max_pause_ms"], 2)}
                            for g, v in stats.items()},
        }
        with open(out, "w") as f:
            json.dump(document, f, indent=2)

    gc.callbacks.append(callback)
    atexit.register(dump)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler the process would die
    # without running atexit. This handler turns it into a normal exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if os.environ.get("BENCH_GC_TUNE"):
        # What-if experiment (`--gc-tune`), not the product's behaviour: freeze what start-up allocated (so that
        # full collections skip it) and collect the young generation 14× less often.
        gc.set_threshold(10_000, 10, 10)
        threading.Timer(float(os.environ["BENCH_GC_TUNE"]), gc.freeze).start()
    from cli.main import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
