"""`python -m bench [all|latency|throughput|streams|subscriptions] [--quick]` (also `make bench`).

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
import traceback

from bench import profile
from bench.report import RESULTS_DIR, Result, machine, markdown, write_json
from bench.stack import raise_fd_limit

SCENARIOS = ("latency", "throughput", "streams", "subscriptions")


def _load(name: str):  # noqa: ANN202 - the scenario's run()
    from importlib import import_module

    return import_module(f"bench.scenarios.{name}").run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: every Stack's finally stops its processes


async def _run(names: list[str], quick: bool) -> list[Result]:
    results = []
    for name in names:
        print(f"bench: running {name}{' (quick)' if quick else ''} ...", file=sys.stderr, flush=True)
        profile.scenario(name)
        try:
            result = await _load(name)(quick)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except Exception as exc:  # one failed scenario is reported, the others still run
            traceback.print_exc()
            result = Result(name, error=f"{type(exc).__name__}: {exc}"[:300])
        result.details["machine"] = machine()
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
    fresh = {r.scenario for r in results}
    kept = [Result.from_dict(r) for r in old if r.get("scenario") not in fresh]
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return sorted(kept + results, key=lambda r: order.get(r.scenario, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Switchboard benchmarks (SPEC §12)")
    parser.add_argument("scenario", nargs="?", default="all", choices=("all", *SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="a short smoke run (smaller counts, shorter windows)")
    parser.add_argument("--profile", default="", metavar="PROCS",
                        help="py-spy the given processes (web,worker) in each measured window; see bench/profile.py")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON results file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    raise_fd_limit()
    profile.TARGETS.update(p for p in args.profile.split(",") if p)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        results = asyncio.run(_run(names, args.quick))
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
