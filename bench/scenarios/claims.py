"""The shared queue (Supabase store): how fast processes claim queued tasks, and how long a
new task waits before it runs, with 1, 2 and 4 processes (gevent workers of one gunicorn)
over the tests' PostgREST stand-in and a real PostgreSQL. No peer: Flask-SSE has no queue.

- Claims per second: a backlog of queued tasks is written straight into the database, then
  the processes start and claim it; the dev runner ends each task at once (one tick, no
  wait), so the figure is the claim and the task's few writes, over the time from the first
  ``running`` to the last (the database's clock).
- Create to running: with the processes idle, tasks are created through the server at a
  steady rate; the delay is the task's ``status`` event time minus its row's ``created_at``
  (both the database's clock), p50 and p99.

The stand-in is a small threaded Python server, slower than PostgREST, and shares the
machine's two cores with the processes: the figures are the stand-in's; their shape across
1, 2 and 4 processes is the point.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..procs import say
from ..report import Row, number
from ..servers import Ours, request
from ..stats import percentile
from . import supabase

PROCESSES = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class Scale:
    backlog: int  # queued tasks claimed, per process count
    creates: int  # tasks created one at a time for the delay
    rate: float  # creates per second


FULL = Scale(backlog=1000, creates=200, rate=20.0)
QUICK = Scale(backlog=200, creates=40, rate=20.0)


def _sql(postgres, statement: str) -> list[tuple]:
    with postgres.connect("ops") as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _empty(postgres) -> None:
    _sql(postgres, "TRUNCATE va_workers, va_tasks RESTART IDENTITY CASCADE")


def _settings(proxy, processes: int) -> dict[str, str]:
    return {**proxy.env, "WEB_CONCURRENCY": str(processes), "OPS_WORKERS": "8",
            "OPS_QUEUE_SIZE": "100000", "OPS_DEV_TICKS": "1", "OPS_DEV_TICK_SECONDS": "0",
            "OPS_SUPABASE_POLL_SECONDS": "0.5", "OPS_SUPABASE_TIMEOUT_SECONDS": "10"}


def _wait_done(postgres, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _sql(postgres, "SELECT count(*) FROM va_tasks WHERE status = 'done'")[0][0] < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tasks did not all end within {timeout:g} s")
        time.sleep(0.2)


def claims_per_second(postgres, proxy, processes: int, scale: Scale, logdir: Path) -> float:
    _empty(postgres)
    _sql(postgres, f"INSERT INTO va_tasks (title) SELECT 'backlog ' || n "
                   f"FROM generate_series(1, {scale.backlog}) n")
    _sql(postgres, "INSERT INTO va_task_events (task_id, kind, data_json) SELECT id, "
                   "'created', '{\"body\": null, \"runner\": \"dev\"}' FROM va_tasks")
    with Ours(logdir, side=f"claims-{processes}", **_settings(proxy, processes)):
        _wait_done(postgres, scale.backlog, timeout=600)
    first, last = _sql(postgres, "SELECT min(created_at), max(created_at) FROM va_task_events "
                                 "WHERE kind = 'status'")[0]
    return scale.backlog / max((last - first).total_seconds(), 1e-3)


def _wait_live(ours, processes: int, timeout: float = 30) -> None:
    """Until every process has written its heartbeat row (and so claims)."""
    deadline = time.monotonic() + timeout
    while True:
        _, answer = request(ours.port, "GET", "/ops/workers", headers=ours.headers)
        if sum(row["live"] for row in answer["workers"]) >= processes:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {answer['workers']} of {processes} processes are live")
        time.sleep(0.1)


def create_to_running(postgres, proxy, processes: int, scale: Scale, logdir: Path) -> dict:
    _empty(postgres)
    with Ours(logdir, side=f"claims-delay-{processes}", **_settings(proxy, processes)) as ours:
        _wait_live(ours, processes)
        start = time.monotonic()
        for n in range(scale.creates):
            time.sleep(max(0.0, start + n / scale.rate - time.monotonic()))
            status, answer = request(ours.port, "POST", "/ops/tasks", {"title": f"t{n}"},
                                     ours.headers)
            if status != 201:
                raise RuntimeError(f"POST /ops/tasks answered {status}: {answer}")
        _wait_done(postgres, scale.creates, timeout=120)
    delays = [float(row[0]) * 1000 for row in _sql(
        postgres, "SELECT extract(epoch FROM e.created_at - t.created_at) FROM va_tasks t "
                  "JOIN va_task_events e ON e.task_id = t.id AND e.kind = 'status'")]
    return {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99)}


def run(scale: Scale, logdir: Path, runs: int) -> list[dict]:
    """``runs`` rounds, each process count in turn; one dict a round."""
    rounds = []
    with supabase.gateway() as proxy:
        postgres = proxy.postgres
        for n in range(runs):
            results = {}
            for processes in PROCESSES:
                say(f"claims: run {n + 1} of {runs}, {processes} process(es)")
                results[f"claims_per_s_{processes}"] = claims_per_second(
                    postgres, proxy, processes, scale, logdir)
                for key, value in create_to_running(postgres, proxy, processes, scale,
                                                    logdir).items():
                    results[f"{key}_{processes}"] = value
            rounds.append(results)
    return rounds


def describe(scale: Scale) -> str:
    return (f"PostgreSQL and the tests' PostgREST stand-in; one gunicorn with 1, 2 and 4 gevent "
            f"workers (processes), OPS_WORKERS=8 each, the dev runner ending each task at once; "
            f"claims: a backlog of {scale.backlog} queued tasks written into the database, "
            f"then claimed (first to last `running`, the database's clock); create to "
            f"running: {scale.creates} tasks created at {scale.rate:g}/s through the server, "
            f"the delay from the row's `created_at` to its `status` event.")


def rows(results: dict, scale: Scale) -> list[Row]:
    claims = [results.get(f"claims_per_s_{n}") for n in PROCESSES]
    p50 = [results.get(f"p50_ms_{n}") for n in PROCESSES]
    p99 = [results.get(f"p99_ms_{n}") for n in PROCESSES]
    per = " / ".join(f"{n}" for n in PROCESSES)
    return [
        Row(f"Shared queue: claims/s with {per} processes",
            " / ".join(number(c, 0) for c in claims), "– (no queue)", "–",
            "reported (the stand-in is the limit)"),
        Row(f"Shared queue: create to running p50 / p99 with {per} processes",
            " / ".join(f"{number(a)} / {number(b)} ms" for a, b in zip(p50, p99)),
            "– (no queue)", "–", "reported"),
    ]
