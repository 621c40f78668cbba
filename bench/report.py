"""Results: what each scenario measured, the machine it ran on, the Markdown table and the JSON file."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Metric", "Result", "percentiles", "machine", "markdown", "write_json", "RESULTS_DIR"]

RESULTS_DIR = Path(__file__).parent / "results"


def percentiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max (and the count), in the values' own unit."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    out: dict[str, float] = {"count": len(ordered)}
    for q in qs:
        rank = max(1, math.ceil(q * len(ordered)))
        out[f"p{round(q * 100):d}"] = ordered[rank - 1]
    out["max"] = ordered[-1]
    out["mean"] = sum(ordered) / len(ordered)
    return out


@dataclass
class Metric:
    metric: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Result:
    scenario: str
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def add_calls(self, label: str, calls: dict[str, float], top: int = 6) -> None:
        """A row summing up Redis commands per unit: the total and the most frequent."""
        parts = ", ".join(f"{name} {n:g}" for name, n in list(calls.items()) if name != "total")
        head = ", ".join(parts.split(", ")[:top])
        self.add(label, f"{calls.get('total', 0):g} ({head})")

    def add(self, metric: str, value: float | int | str, unit: str = "", target: str = "", met: bool | None = None) -> None:
        if isinstance(value, float):
            value = round(value, 2)
        self.metrics.append(Metric(metric, value, unit, target, met))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        metrics = [Metric(**m) for m in data.get("metrics", [])]
        return cls(data["scenario"], metrics, data.get("details", {}), data.get("error"))


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": mem_kb // 1024,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": _code_version(),
    }


def _code_version() -> dict[str, Any]:
    """The commit measured, and the product files changed since (read-only git calls)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_product_files": changed}


def _fmt(value: object, unit: str) -> str:
    if isinstance(value, float):
        value = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value} {unit}".strip()


def markdown(results: list[Result], info: dict[str, Any]) -> str:
    lines = [
        f"Machine: {info['nproc']} CPU ({info['cpu_model']}), {info['memory_mb']} MB, Python {info['python']}, "
        f"{info['date']}{' (quick run)' if info.get('quick') else ''}; code {info['code']['commit']}"
        + (f" + {len(info['code']['uncommitted_product_files'])} uncommitted product files (listed in the JSON)"
           if info["code"]["uncommitted_product_files"] else ""),
        "",
        "| scenario | metric | value | target (SPEC §12) | met? |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        if result.error:
            error = " ".join(result.error.split()).replace("|", "/")
            lines.append(f"| {result.scenario} | error | {error} | | ✗ |")
        for m in result.metrics:
            met = "" if m.met is None else ("✓" if m.met else "✗")
            lines.append(f"| {result.scenario} | {m.metric} | {_fmt(m.value, m.unit)} | {m.target} | {met} |")
    cpu = [(r.scenario, r.details.get("cpu_percent")) for r in results if r.details.get("cpu_percent")]
    if cpu:
        lines += ["", "CPU during the measured window (% of one core; client = this load generator):", ""]
        for scenario, shares in cpu:
            lines.append(f"- {scenario}: " + ", ".join(f"{k} {v}" for k, v in shares.items()))
    return "\n".join(lines)


def write_json(results: list[Result], info: dict[str, Any], path: Path | None = None) -> Path:
    path = path or RESULTS_DIR / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": info, "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
