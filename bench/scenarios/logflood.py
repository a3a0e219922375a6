"""Log flood: a recipe printing many 60-byte lines as fast as it can, on the in-process store
and on the Supabase store (the tests' PostgREST stand-in over PostgreSQL), batched as shipped
against the baseline that writes one ``log`` event per line (``bench/logflood/oneline.py``),
measured in the same run. No peer: Flask-SSE has no runner.

Each measurement starts a fresh server (gunicorn, one gevent worker), creates the task, reads
its stream from the start until the terminal event, and checks that every line came, in
order, with consecutive numbers. Figures:

- lines/s persisted: lines over the time from the create request to the terminal event read
  by the client (every line is stored before it can be read);
- delay from the child's write to the client's read: each line carries the moment the child
  wrote it; every 50th line is sampled (p50 / p99);
- Supabase requests per 100 lines: every request the gateway answered while the task ran
  (inserts, the stream's polls, leases), and the event inserts alone;
- bytes of RSS per stored line (in-process store): the worker's resident memory after the
  task, less before it, over the lines; an upper bound, since what the allocator kept of
  transient work (serialised batches, the stream's buffers) counts too.

The baseline writes every line alone, so on Supabase it costs one insert per line: it runs at
``baseline_lines`` (fewer lines than the largest flood) to keep the run within minutes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import requests

from ..procs import say
from ..report import Row, number, ratio, verdict
from ..servers import ADMIN, ROOT, Gunicorn, clean_env, free_port, request
from ..stats import percentile
from . import supabase

CHILD = ROOT / "bench" / "logflood" / "child.py"
SAMPLE_EVERY = 50
STORES = ("in-process", "Supabase")


@dataclasses.dataclass(frozen=True)
class Scale:
    lines: tuple[int, ...]
    baseline_lines: int


FULL = Scale(lines=(100_000, 1_000_000), baseline_lines=10_000)
QUICK = Scale(lines=(100_000,), baseline_lines=5_000)


class Server(Gunicorn):
    """Ours running recipes (not the dev runner): as shipped, or the one-event-a-line baseline."""

    def __init__(self, logdir: Path, *, side: str, baseline: bool, **settings: str):
        port = free_port()
        recipes = logdir / "logflood-recipes.toml"
        # As root the service runs its recipes as nobody (OPS_RECIPE_USER), who may not reach
        # this interpreter (a virtualenv under /root) nor the log directory: the child, which
        # needs the standard library only, runs on the system's Python, from /.
        as_root = os.geteuid() == 0
        python = "/usr/bin/python3" if as_root else sys.executable
        recipes.write_text(
            "[recipes.flood]\n"
            f"argv = {json.dumps([python, str(CHILD), '{count}'])}\n"
            'cwd = "/"\n'
            "[recipes.flood.params.count]\n"
            'pattern = "[0-9]{1,8}"\n')
        if as_root:
            settings = {"OPS_RECIPE_USER": "nobody", **settings}
        env = clean_env(SETTINGS_ADMIN_TOKEN=ADMIN, OPS_RECIPES=str(recipes),
                        WEB_CONCURRENCY="1", OPS_BIND=f"127.0.0.1:{port}",
                        BENCH_PORT=str(port), **settings)
        app = "bench.logflood.oneline:app" if baseline else "wsgi:app"
        argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app]
        super().__init__(logdir, argv, env, side=side)

    headers = {"X-Admin-Token": ADMIN}

    def start_flood(self, count: int) -> int:
        status, answer = request(self.port, "POST", "/ops/tasks",
                                 {"title": "log flood", "recipe": "flood",
                                  "params": {"count": str(count)}}, self.headers)
        if status != 201:
            raise RuntimeError(f"POST /ops/tasks answered {status}: {answer}")
        return answer["id"]


def read_stream(server: Server, task_id: int, count: int) -> dict:
    """Read the task's events to its end; check every line came once, in order."""
    delays: list[float] = []
    expected, events = 1, 0
    url = f"http://127.0.0.1:{server.port}/ops/tasks/{task_id}/stream"
    with requests.get(url, headers=server.headers, stream=True, timeout=600) as response:
        response.raise_for_status()
        for raw in response.iter_lines():
            if not raw.startswith(b"data: "):
                continue
            event = json.loads(raw[6:])
            now = time.time()
            kind, data = event["kind"], event["data"]
            if kind == "log":
                if data["first_line"] != expected:
                    raise RuntimeError(f"line {expected} expected, got {data['first_line']}")
                events += 1
                for index, text in enumerate(data["lines"]):
                    if (expected + index) % SAMPLE_EVERY == 0:
                        delays.append(now - float(text[8:25]))
                expected += len(data["lines"])
            elif kind in ("done", "failed", "canceled"):
                if kind != "done":
                    raise RuntimeError(f"the flood ended {kind}: {data}")
                break
    if expected != count + 1:
        raise RuntimeError(f"{expected - 1} of {count} lines came")
    return {"delay_p50_ms": percentile(delays, 50) * 1000,
            "delay_p99_ms": percentile(delays, 99) * 1000,
            "events_per_100_lines": events * 100 / count}


def measure(logdir: Path, count: int, baseline: bool, proxy=None) -> dict:
    """One flood of ``count`` lines on a fresh server; its figures."""
    env = supabase.settings(proxy, 0.1) if proxy is not None else {}
    side = f"logflood-{'supabase' if proxy else 'memory'}-{count}-" \
           f"{'baseline' if baseline else 'batched'}"
    with Server(logdir, side=side, baseline=baseline, **env) as server:
        rss_before = server.rss_kib()
        if proxy is not None:
            proxy.reset_counts()
        started = time.monotonic()
        task_id = server.start_flood(count)
        found = read_stream(server, task_id, count)
        found["lines_per_s"] = count / (time.monotonic() - started)
        if proxy is not None:
            counts = proxy.counts()
            found["requests_per_100_lines"] = sum(counts.values()) * 100 / count
            found["inserts_per_100_lines"] = counts.get("POST va_task_events", 0) * 100 / count
        else:
            found["rss_bytes_per_line"] = (server.rss_kib() - rss_before) * 1024 / count
    return found


def run(scale: Scale, logdir: Path, runs: int) -> list[dict]:
    """``runs`` rounds of every flood, batched and baseline, on each store; a dict a round."""
    rounds = []
    with supabase.gateway() as proxy:
        for n in range(runs):
            results: dict[str, float] = {}
            for store, gateway in (("in-process", None), ("Supabase", proxy)):
                floods = [(count, False) for count in scale.lines]
                floods.append((scale.baseline_lines, True))
                for count, baseline in floods:
                    mode = "baseline" if baseline else "batched"
                    say(f"logflood: run {n + 1} of {runs}, {store}, {count:,} lines, {mode}")
                    figures = measure(logdir, count, baseline, gateway)
                    for key, value in figures.items():
                        results[f"{key}@{store}/{count}/{mode}"] = value
            rounds.append(results)
    return rounds


def missing() -> str | None:
    """Why the scenario cannot run here (it needs the Supabase stand-in), or None."""
    return supabase.missing()


def describe(scale: Scale) -> str:
    return (f"a recipe printing {' and '.join(f'{n:,}' for n in scale.lines)} lines of 60 bytes "
            f"(in chunks of 100, flushed at once), on the in-process store and on the Supabase "
            f"store (the tests' PostgREST stand-in over PostgreSQL, polling every 0.1 s); one "
            f"fresh gunicorn (one gevent worker) per flood, one client reading the stream from "
            f"the start. Baseline: the same runner writing one `log` event per line "
            f"(`bench/logflood/oneline.py`, no rate limit), {scale.baseline_lines:,} lines. "
            f"Every flood is checked whole (every line, in order, numbers consecutive). One "
            f"round unless `--runs` is given.")


def rows(results: dict, scale: Scale) -> list[Row]:
    found = []
    for store in STORES:
        base = f"{store}/{scale.baseline_lines}/baseline"
        baseline_note = f" (baseline at {scale.baseline_lines:,} lines)"
        for count in scale.lines:
            key = f"{store}/{count}/batched"
            name = f"Log flood, {store} store, {count:,} lines"
            rate, old_rate = results.get(f"lines_per_s@{key}"), results.get(f"lines_per_s@{base}")
            found.append(Row(
                f"{name}: lines/s persisted and read{baseline_note}",
                number(rate), f"baseline: {number(old_rate)}", ratio(rate, old_rate),
                verdict("every line kept, in order", None if rate is None else True)))
            p50, p99 = results.get(f"delay_p50_ms@{key}"), results.get(f"delay_p99_ms@{key}")
            old = (results.get(f"delay_p50_ms@{base}"), results.get(f"delay_p99_ms@{base}"))
            found.append(Row(
                f"{name}: delay from the child's write to a client's read, p50 / p99",
                f"{number(p50)} / {number(p99)} ms",
                f"baseline: {number(old[0])} / {number(old[1])} ms", ratio(p50, old[0])))
            if store == "Supabase":
                req = results.get(f"requests_per_100_lines@{key}")
                ins = results.get(f"inserts_per_100_lines@{key}")
                old_req = results.get(f"requests_per_100_lines@{base}")
                old_ins = results.get(f"inserts_per_100_lines@{base}")
                found.append(Row(
                    f"{name}: Supabase requests (event inserts) per 100 lines",
                    f"{number(req, 2)} ({number(ins, 2)})",
                    f"baseline: {number(old_req, 2)} ({number(old_ins, 2)})", ratio(req, old_req),
                    verdict("≤ 1 request per 100 lines", None if req is None else req <= 1)))
            else:
                rss = results.get(f"rss_bytes_per_line@{key}")
                old_rss = results.get(f"rss_bytes_per_line@{base}")
                found.append(Row(
                    f"{name}: worker RSS growth per stored line",
                    f"{number(rss)} B", f"baseline: {number(old_rss)} B", ratio(rss, old_rss)))
    return found
