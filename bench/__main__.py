"""``python -m bench``: run the scenarios, ours and the peer alternately, and write the report.

``--quick`` runs every scenario small and short (minutes, not a quarter of an hour) and, unless
``--output`` is given, prints the table instead of rewriting ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import report as reporting
from .procs import load_average, raise_fd_limit, say
from .scenarios import claims, creation, latency, listing, logflood, storm, streams, supabase
from .stats import median_of_runs

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("latency", "streams", "storm", "creation", "listing", "supabase", "logflood",
             "claims")
# What each scenario starts besides Python: the peer runs on redis-server, wrk loads creation.
PROGRAMS = {"latency": ("redis-server",), "streams": ("redis-server",),
            "storm": ("redis-server",), "creation": ("wrk",), "listing": (), "supabase": (),
            "logflood": (), "claims": ()}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scales, short runs")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeatable); default: all")
    parser.add_argument("--runs", type=int, help="alternating runs per side (default 3, quick 1)")
    parser.add_argument("--output", type=Path, help="the report to write (default: "
                        "docs/performance.md for a full run, none for --quick)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--compare", metavar="REV", help="also run ours as of this git revision, "
                        "or from this directory (side 'before'), in the latency scenario "
                        "and the Supabase reads")
    args = parser.parse_args(argv)
    if args.runs is not None and not 1 <= args.runs <= 9:
        parser.error("--runs must be between 1 and 9")
    return args


def rounded(result: dict) -> dict:
    """A run's figures to three significant digits, for the report."""
    def short(value):
        if isinstance(value, float) and math.isfinite(value) and value:
            return round(value, max(0, 2 - int(math.floor(math.log10(abs(value))))))
        return value
    return {key: short(value) for key, value in result.items()}


def checkout(revision: str, logdir: Path) -> Path:
    """The service's files as of ``revision`` (extracted into ``logdir``), or the directory
    ``revision`` names."""
    if Path(revision).is_dir():
        return Path(revision).resolve()
    root = logdir / "before"
    root.mkdir()
    archive = subprocess.run(["git", "archive", revision, "app", "wsgi.py", "gunicorn.conf.py"],
                             cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def alternate(name: str, module, scale, runs: int, logdir: Path, report: reporting.Report,
              before: Path | None) -> dict[str, dict]:
    """Run each side ``runs`` times, rotating who goes first; return each side's medians."""
    extra = getattr(module, "EXTRA_SIDES", {})  # e.g. the peer in another deployment
    sides = ["ours", "peer", *extra] + (["before"] if before else [])
    starts = {"ours": lambda: module.run_ours(scale, logdir),
              "peer": lambda: module.run_peer(scale, logdir),
              "before": lambda: module.run_ours(scale, logdir, side="before", root=before)}
    starts.update({side: functools.partial(run_side, scale, logdir)
                   for side, run_side in extra.items()})
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for n in range(runs):
        for side in sides[n % len(sides):] + sides[:n % len(sides)]:
            say(f"{name}: run {n + 1} of {runs}, {side}")
            try:
                result = starts[side]()
            except Exception as error:  # one failed run is reported, the others still count
                say(f"{name}: {side} failed: {error}")
                result = {"failed": str(error)[:500]}
            results[side].append(result)
            report.runs.setdefault(name, []).append({"run": n + 1, "side": side,
                                                     **rounded(result)})
    medians = {}
    for side, side_runs in results.items():
        good = [r for r in side_runs if "failed" not in r]
        if not good:
            report.not_measured[f"{name}, {side}"] = f"every run failed: {side_runs[0]['failed']}"
        medians[side] = median_of_runs(good)
    if before:
        report.before[name] = (medians["before"], medians["ours"])
    return medians


def run(args: argparse.Namespace, logdir: Path, report: reporting.Report) -> None:
    chosen = args.scenario or list(SCENARIOS)
    runs = args.runs or (1 if args.quick else 3)
    before = checkout(args.compare, logdir) if args.compare else None
    if before:
        report.settings["Before"] = f"ours as of `{args.compare}`, run alternately as a third side"
    if "latency" in chosen:
        scale = latency.QUICK if args.quick else latency.FULL
        report.settings["Delivery latency and CPU per event"] = latency.describe(scale)
        medians = alternate("latency", latency, scale, runs, logdir, report, before)
        report.rows += latency.rows(medians, scale)
    if "streams" in chosen:
        scale = streams.QUICK if args.quick else streams.FULL
        report.settings["Concurrent streams"] = streams.describe(scale)
        # The longest scenario, and the steadiest (memory): two runs a side keep `make bench`
        # within a quarter of an hour.
        medians = alternate("streams", streams, scale, min(runs, 2), logdir, report, None)
        report.rows += streams.rows(medians["ours"], medians["peer"], scale)
    if "storm" in chosen:
        scale = storm.QUICK if args.quick else storm.FULL
        report.settings["Reconnect storms"] = storm.describe(scale)
        reason = supabase.missing()  # ours' restart needs a store that outlives the server
        if reason:
            report.not_measured["Restart storm"] = reason
        # Two rounds at most, as for the streams: a round starts six servers and restarts two.
        results = measured(report, "Reconnect storms",
                           lambda: storm.run(scale, logdir, min(runs, 2),
                                             restart=reason is None))
        report.runs["storm"] = [rounded(result) for result in results]
        for result in results:
            if "failed" in result:
                report.not_measured[f"storm, {result['side']}, run {result['run']}"] = \
                    result["failed"]
        medians = {side: median_of_runs([r for r in results
                                         if r["side"] == side and "failed" not in r])
                   for side in ("ours", "peer")}
        report.rows += storm.rows(medians["ours"], medians["peer"], scale)
    if "creation" in chosen:
        scale = creation.QUICK if args.quick else creation.FULL
        report.settings["Task creation"] = creation.describe(scale)
        say("creation: wrk against POST /ops/tasks and /healthz")
        pairs = measured(report, "Task creation", lambda: creation.run(scale, logdir))
        report.runs["creation"] = [rounded(pair) for pair in pairs]
        report.rows += creation.rows(median_of_runs(pairs), scale)
    if "listing" in chosen:
        scale = listing.QUICK if args.quick else listing.FULL
        report.settings["Task list"] = listing.describe(scale)
        results = measured(report, "Task list", lambda: listing.run(scale))
        report.runs["listing"] = [rounded(result) for result in results]
        report.rows += listing.rows(median_of_runs(results), scale)
    if "supabase" in chosen:
        scale = supabase.QUICK if args.quick else supabase.FULL
        report.settings["Supabase path"] = supabase.describe(scale)
        rounds = measured(report, "Supabase path",
                          lambda: supabase.run(scale, logdir, runs, before), supabase.missing())
        report.runs["supabase"] = [rounded(results) for results in rounds]
        report.rows += supabase.rows(median_of_runs(rounds), scale)
    if "logflood" in chosen:
        scale = logflood.QUICK if args.quick else logflood.FULL
        report.settings["Log flood"] = logflood.describe(scale)
        # One round unless --runs says otherwise: each flood is 100,000 lines or more (its
        # figures are medians over every line), and the Supabase baseline, one insert per
        # line, takes minutes.
        rounds = measured(report, "Log flood",
                          lambda: logflood.run(scale, logdir, args.runs or 1),
                          logflood.missing())
        report.runs["logflood"] = [rounded(results) for results in rounds]
        report.rows += logflood.rows(median_of_runs(rounds), scale)
    if "claims" in chosen:
        scale = claims.QUICK if args.quick else claims.FULL
        report.settings["Shared queue"] = claims.describe(scale)
        rounds = measured(report, "Shared queue",
                          lambda: claims.run(scale, logdir, args.runs or 1), supabase.missing())
        report.runs["claims"] = [rounded(results) for results in rounds]
        report.rows += claims.rows(median_of_runs(rounds), scale)


def measured(report: reporting.Report, name: str, run, reason: str | None = None) -> list:
    """What ``run()`` returns, or nothing: a ``reason`` given, or the run's failure, goes to the
    report's "Not measured" section under ``name``."""
    if reason is None:
        try:
            return run()
        except Exception as error:
            say(f"{name} failed: {error}")
            reason = f"the run failed: {str(error)[:500]}"
    report.not_measured[name] = reason
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    needed = sorted({p for name in args.scenario or SCENARIOS for p in PROGRAMS[name]})
    missing = [p for p in needed if shutil.which(p) is None]
    if missing:
        print(f"missing programs: {', '.join(missing)}; run bash bench/system-deps.sh "
              "(make bench does)", file=sys.stderr)
        return 2
    raise_fd_limit()
    output = args.output or (None if args.quick else ROOT / "docs" / "performance.md")
    report = reporting.Report(
        command=shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])]),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), load_before=load_average())
    logdir = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    failed = True
    try:
        run(args, logdir, report)
        failed = False
    finally:
        report.load_after = load_average()
        if failed or args.keep_logs or report.not_measured:
            say(f"logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    text = reporting.render(report)
    if output is not None:
        output.write_text(text)
        say(f"wrote {output}")
    print(text.split("\n## ")[0])
    return 1 if report.not_measured else 0


if __name__ == "__main__":
    sys.exit(main())
