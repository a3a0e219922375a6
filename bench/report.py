"""``docs/performance.md``: the table of medians, each run's figures, the machine and the notes."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from importlib.metadata import version
from pathlib import Path

NOTES = Path(__file__).resolve().parent / "notes.md"


@dataclasses.dataclass
class Row:
    scenario: str
    ours: str
    peer: str
    ratio: str
    target: str = ""


@dataclasses.dataclass
class Report:
    command: str
    date: str
    load_before: str
    load_after: str = ""
    rows: list[Row] = dataclasses.field(default_factory=list)
    runs: dict[str, list] = dataclasses.field(default_factory=dict)
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    not_measured: dict[str, str] = dataclasses.field(default_factory=dict)
    before: dict[str, tuple[dict, dict]] = dataclasses.field(default_factory=dict)


def machine() -> str:
    """The short description of this machine that each row carries."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} × {model}, {memory:.0f} GiB"


def software() -> str:
    names = ("gunicorn", "gevent", "flask", "flask-sse", "redis")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except Exception:
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found) + \
        f", Linux {platform.release()}"


def number(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or not peer or math.isinf(peer) or math.isnan(peer):
        return "–"
    return f"{ours / peer:.2f}"


def verdict(text: str, met: bool | None) -> str:
    """A target cell: the target, and whether this run met it."""
    if met is None:
        return f"{text}: not measured"
    return f"{text}: {'met' if met else 'NOT met'}"


def render(report: Report) -> str:
    host = machine()
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand: the harness rewrites",
        "this file. Every figure is the median of the runs listed under *Runs*; ours and the peer",
        "ran alternately on the same machine in the same run. Ratio is ours ÷ peer (for the",
        "task-creation row, ÷ the same server's `/healthz`): below 1 is better for times, sizes",
        "and CPU, above 1 for rates.",
        "",
        "| Scenario | Ours | Peer | Ratio | Target | Machine | Date |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report.rows:
        lines.append(f"| {row.scenario} | {row.ours} | {row.peer} | {row.ratio} | "
                     f"{row.target} | {host} | {report.date} |")
    lines += ["", "## Machine and noise", "",
              f"- Machine: {host}; {software()}.",
              f"- Before the run: {report.load_before}; after: {report.load_after} (load "
              "averages over 1 / 5 / 15 min; CPU pressure over 10 / 60 s). The machine is "
              "shared: a load above its core count, or CPU pressure, means other work competed "
              "for the CPU during the run, which shows in the latencies first. The latency "
              "runs' `worker_cpu_wait_share` is how much of the window the measured worker "
              "itself spent ready to run but waiting for a CPU.",
              f"- Command: `{report.command}`."]
    if report.settings:
        lines += ["", "## Settings of each scenario", ""]
        lines += [f"- **{name}**: {text}" for name, text in report.settings.items()]
    if report.before:
        lines += ["", "## Before and after", "",
                  "Medians of ours as of the compared revision (before) and now, run alternately "
                  "in the same run.", "",
                  "| Scenario | Figure | Before | Now | Ratio |", "| --- | --- | --- | --- | --- |"]
        for name, (old, new) in report.before.items():
            for key in sorted(set(old) & set(new)):
                lines.append(f"| {name} | {key} | {number(old[key], 2)} | {number(new[key], 2)} "
                             f"| {ratio(new[key], old[key])} |")
    if report.not_measured:
        lines += ["", "## Not measured", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in report.not_measured.items()]
    lines += ["", "## Runs", "", "Each run's figures, in the order they ran.", ""]
    for name, runs in report.runs.items():
        lines.append(f"- **{name}**")
        for run in runs:
            lines.append(f"  - `{json.dumps(run, default=str, allow_nan=True)}`")
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip()]
    return "\n".join(lines) + "\n"


def write(report: Report, path: Path) -> None:
    path.write_text(render(report))
