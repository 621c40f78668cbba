"""`python -m bench [all|latency|throughput|chat|resources|streams|subscriptions|scale] [--quick]` (also `make bench`);
`python -m bench soak [--minutes N]`, the soak run, only when named.

Each scenario starts its own private redis-server, SQLite database, web and worker process, measures, and
stops them. Prints a Markdown table and writes JSON to bench/results/latest.json (quick runs:
bench/results/quick.json); running one scenario replaces only that scenario's entry in the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
import traceback

from bench import profile
from bench.report import RESULTS_DIR, Result, machine, markdown, write_json
from bench.stack import GC_STATS, raise_fd_limit

SCENARIOS = ("latency", "throughput", "chat", "resources", "streams", "subscriptions", "scale")
EXPLICIT = ("soak",)  # run only when named: not part of `all`


def _load(name: str):  # noqa: ANN202 - the scenario's run()
    from importlib import import_module

    return import_module(f"bench.scenarios.{name}").run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: every Stack's finally stops its processes


async def _wait_quiet(max_wait_s: float, busy_limit: float = 25.0) -> float:
    """Wait (up to `max_wait_s`) until the rest of the machine uses < `busy_limit` % of a core; returns the
    last figure. Other jobs on a shared machine distort every result."""
    import psutil

    deadline = time.monotonic() + max_wait_s
    while True:
        busy = psutil.cpu_percent(interval=None)
        await asyncio.sleep(1.0)
        busy = psutil.cpu_percent(interval=None) * (psutil.cpu_count() or 1)
        if busy < busy_limit or time.monotonic() > deadline:
            return round(busy, 1)
        print(f"bench: machine busy ({busy:.0f} % of a core); waiting for it to calm down", file=sys.stderr, flush=True)


async def _run(names: list[str], quick: bool, wait_quiet_s: float, minutes: float = 10.0) -> list[Result]:
    results = []
    for name in names:
        busy = await _wait_quiet(wait_quiet_s)
        print(f"bench: running {name}{' (quick)' if quick else ''} (machine busy before: {busy} % of a core) ...",
              file=sys.stderr, flush=True)
        profile.scenario(name)
        try:
            options = {"minutes": minutes} if name == "soak" else {}
            result = await _load(name)(quick, **options)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except Exception as exc:  # one failed scenario is reported, the others still run
            traceback.print_exc()
            result = Result(name, error=f"{type(exc).__name__}: {exc}"[:300])
        if GC_STATS["collected"]:
            from bench.gcprobe import in_windows

            summaries = [in_windows(report, GC_STATS["windows"]) for report in GC_STATS["collected"]]
            result.details["gc_in_measured_windows"] = summaries
            seen: dict[str, int] = {}
            for g in summaries:  # a scenario with several stacks (streams, subscriptions) numbers them in order
                seen[g["process"]] = seen.get(g["process"], 0) + 1
                name = g["process"] + (f" (stack {seen[g['process']]})" if len(summaries) > 2 else "")
                result.add(f"GC pauses in {name} during the measured window",
                           f"{g['pause_ms']:,.0f} ms = {g['share_of_window_percent']} % of the time; {g['collections']} "
                           f"collections, {g['gen2']} of gen 2, longest {g['max_pause_ms']} ms; "
                           f"{g['tracked_objects_at_exit']:,} objects tracked")
        GC_STATS["collected"].clear()
        GC_STATS["windows"].clear()
        result.details["machine"] = machine()
        result.details["machine_busy_before_percent"] = busy
        results.append(result)
    return results


def _merge(path, results: list[Result]) -> list[Result]:
    """Keep the file's entries for scenarios not run this time."""
    if not path.exists():
        return results
    try:
        old = json.loads(path.read_text())["results"]
    except (ValueError, KeyError):
        return results
    good_before = {r["scenario"]: Result.from_dict(r) for r in old if r.get("scenario") and not r.get("error")}
    # A scenario that failed this time does not replace a good earlier result (the table shows the failure).
    results = [good_before.get(r.scenario, r) if r.error else r for r in results]
    fresh = {r.scenario for r in results}
    kept = [Result.from_dict(r) for r in old if r.get("scenario") not in fresh]
    order = {name: i for i, name in enumerate((*SCENARIOS, *EXPLICIT))}
    return sorted(kept + results, key=lambda r: order.get(r.scenario, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Switchboard benchmarks (SPEC §12)")
    parser.add_argument("scenario", nargs="?", default="all", choices=("all", *SCENARIOS, *EXPLICIT))
    parser.add_argument("--quick", action="store_true", help="a short smoke run (smaller counts, shorter windows)")
    parser.add_argument("--profile", default="", metavar="PROCS",
                        help="py-spy the given processes (web,worker) in each measured window; see bench/profile.py")
    parser.add_argument("--wait-quiet", type=float, default=120.0, metavar="S",
                        help="before each scenario wait up to S seconds for other processes to go idle (default 120)")
    parser.add_argument("--gc-stats", action="store_true",
                        help="run web and worker under bench.gcprobe and report garbage-collector pauses")
    parser.add_argument("--gc-tune", action="store_true",
                        help="with --gc-stats: what-if gc.freeze() after start-up and gc threshold 10,000 (not the product)")
    parser.add_argument("--minutes", type=float, default=10.0, metavar="N",
                        help="soak: minutes of load (default 10; fractions allowed)")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON results file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background by a shell
    raise_fd_limit()
    profile.TARGETS.update(p for p in args.profile.split(",") if p)
    GC_STATS["enabled"] = args.gc_stats or args.gc_tune
    GC_STATS["tune"] = args.gc_tune
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        results = asyncio.run(_run(names, args.quick, args.wait_quiet, args.minutes))
    except KeyboardInterrupt:
        print("bench: interrupted; processes stopped", file=sys.stderr)
        return 130
    info = {**machine(), "quick": args.quick}
    print(markdown(results, info))
    if not args.no_write:
        path = RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
        path = write_json(_merge(path, results), info, path)
        print(f"\nbench: results written to {path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
