"""The Supabase path: ours on the Supabase store, through the PostgREST stand-in of the tests
(``tests/support/gateway``) over a real PostgreSQL (``tests/support/postgres.py``). No peer:
Flask-SSE keeps nothing.

- Delivery latency against the poll interval: as the latency scenario, at a smaller scale,
  once per interval in ``polls``, with the clients on the server that runs the tasks (whose
  own writes nudge its poller) and on a second server sharing the database (which waits for
  its next poll); an event's ``created_at`` is the database's insert time, so the figure is
  what polling adds (target: p50 at most half the interval plus 10 ms).
- Store requests per second with 1, 10 and 100 subscribers on one ticking task, counted by
  the gateway over a window (once: they are counts, not timings): they should not grow with
  the subscribers (one feed per task per process).
- Reads of one process watching 1 to 1,000 tasks, and the requests and latency of a create
  (once, :mod:`.supabase_requests`).

The gateway is a small threaded Python server, slower than PostgREST: absolute figures are
the stand-in's, the shape (latency against interval, requests against subscribers) is ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib.util
import shutil
import time
from pathlib import Path

from ..load import StreamClients
from ..procs import say
from ..report import Row, number, verdict
from ..servers import Ours
from . import latency, supabase_requests

SUBSCRIBERS = (1, 10, 100)
READER_POOL = "reads-only"  # a pool no task is in: a server that claims nothing


@dataclasses.dataclass(frozen=True)
class Scale:
    polls: tuple[float, ...]
    delivery: latency.Scale
    window: float  # seconds of request counting per subscriber count
    interval: float = 0.5  # the counted task's ticks
    requests: supabase_requests.Scale = supabase_requests.QUICK
    across: dict[float, latency.Scale] = dataclasses.field(default_factory=dict)

    def across_at(self, poll: float) -> latency.Scale:
        """The scale of the clients on another server at this poll interval."""
        return self.across.get(poll, self.delivery)


# Ticks 0.437 s apart: a multiple of the poll interval would lock each task's events to one
# phase of the polls, and a few tasks' phases would then decide the median.
# On another server an event waits for a poll a uniform share of the interval, so the median
# of n events is off by about interval / (2 * sqrt(n)) from run to run: at 0.5 s, 10 tasks'
# 230 events gave +-16 ms (medians of 257-265 ms), more than the target's 10 ms margin, so
# there 50 tasks over 20 s give 2,300 events and +-5 ms (the reader polls 100 times a second,
# as at 0.1 s). Not on the tasks' own server: nudged, its delays are short and close together,
# and the writes and nudged polls of 50 tasks (~230 requests a second through the stand-in)
# saturate its one worker (bench/notes.md).
FULL = Scale(polls=(0.1, 0.5), window=10,
             delivery=latency.Scale(clients=100, tasks=10, interval=0.437, seconds=10),
             across={0.5: latency.Scale(clients=100, tasks=50, interval=0.437, seconds=20)},
             requests=supabase_requests.FULL)
QUICK = Scale(polls=(0.1,), window=3,
              delivery=latency.Scale(clients=20, tasks=4, interval=0.437, seconds=3))


def missing() -> str | None:
    """Why the scenario cannot run here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not shutil.which("initdb"):
        return "PostgreSQL is not installed (bench/system-deps.sh installs it)"
    if importlib.util.find_spec("psycopg") is None:  # the gateway's driver (the dev extra)
        return "psycopg is not installed (pip install -e '.[dev,bench]')"
    return None


@contextlib.contextmanager
def gateway():
    """PostgreSQL with a migrated database ``ops``, and the gateway over it (the tests' own);
    the gateway's ``postgres`` is the server, for SQL of the harness's own."""
    from tests.support.gateway import GatewayProcess
    from tests.support.postgres import PostgresServer

    postgres = PostgresServer()
    try:
        postgres.start()
        postgres.create_database("ops")
        with GatewayProcess(postgres.dsn("ops")) as process:
            process.postgres = postgres
            yield process
    finally:
        postgres.stop()


def settings(proxy, poll: float) -> dict[str, str]:
    return {**proxy.env, "OPS_SUPABASE_POLL_SECONDS": str(poll),
            "OPS_SUPABASE_TIMEOUT_SECONDS": "10"}


def delivery(proxy, poll: float, scale: latency.Scale, logdir: Path) -> dict:
    """Clients on the server that runs the tasks (its poller is nudged by its own writes)."""
    env = {**latency.dev_settings(scale), **settings(proxy, poll)}
    with Ours(logdir, side=f"supabase-{poll}", **env) as server:
        return latency.measure(server, latency.start_tasks(server, scale), scale, logdir)


def delivery_across(proxy, poll: float, scale: latency.Scale, logdir: Path) -> dict:
    """Clients on a second server sharing the database: it learns of each event at its own
    next poll, as a worker other than the task's own does (CPU figures are the reader's)."""
    env = {**latency.dev_settings(scale), **settings(proxy, poll)}
    # The reader serves a pool no task is in, so it claims none of the writer's tasks from the
    # shared queue: every event it delivers waits for its poll.
    with Ours(logdir, side=f"supabase-{poll}-writer", **env) as writer, \
            Ours(logdir, side=f"supabase-{poll}-reader", **env,
                 OPS_POOLS=READER_POOL) as reader:
        return latency.measure(reader, latency.start_tasks(writer, scale), scale, logdir)


def requests_per_subscriber_count(proxy, scale: Scale, logdir: Path) -> dict:
    """Store requests per second over a window, with each count of subscribers on one task."""
    ticks = int((len(SUBSCRIBERS) * (scale.window + 60)) / scale.interval)
    env = {"OPS_DEV_TICK_SECONDS": str(scale.interval), "OPS_DEV_TICKS": str(ticks),
           **settings(proxy, scale.polls[0])}
    found = {}
    with Ours(logdir, side="supabase-subscribers", **env) as server:
        task_id = server.create_task("watched")
        for count in SUBSCRIBERS:
            paths = [server.stream_path(task_id)] * count
            with StreamClients(logdir, server.port, paths, headers=server.headers) as clients:
                opened = clients.wait_open()["open"]
                if opened != count:
                    raise RuntimeError(f"only {opened} of {count} streams opened")
                proxy.reset_counts()
                started = time.monotonic()
                time.sleep(scale.window)
                counts = proxy.counts()
                elapsed = time.monotonic() - started
                clients.finish()
            found[f"requests_per_s_{count}"] = sum(counts.values()) / elapsed
            found[f"event_reads_per_s_{count}"] = counts.get("GET va_task_events", 0) / elapsed
    return found


def run(scale: Scale, logdir: Path, runs: int, before: Path | None = None) -> list[dict]:
    """``runs`` rounds of every measurement, the poll intervals in turn; one dict a round
    (the counts in the first one only; ``before``: ours as of another checkout too)."""
    rounds = []
    with gateway() as proxy:
        for n in range(runs):
            results = {}
            for poll in scale.polls:
                say(f"supabase: run {n + 1} of {runs}, delivery with a poll every {poll} s")
                for key, value in delivery(proxy, poll, scale.delivery, logdir).items():
                    results[f"{key}@{poll}"] = value
                across = delivery_across(proxy, poll, scale.across_at(poll), logdir)
                for key, value in across.items():
                    results[f"{key}@{poll}/across"] = value
            if n == 0:
                say("supabase: store requests with 1, 10 and 100 subscribers")
                results.update(requests_per_subscriber_count(proxy, scale, logdir))
                results.update(supabase_requests.run(proxy, scale.requests, logdir, before))
            rounds.append(results)
    return rounds


def describe(scale: Scale) -> str:
    d = scale.delivery
    across = "".join(f"; on another server at {poll:g} s, {a.clients} clients on {a.tasks} "
                     f"tasks and a {a.seconds:g} s window" for poll, a in scale.across.items())
    return (f"PostgreSQL and the tests' PostgREST stand-in (`tests/support/gateway`); delivery: "
            f"{d.clients} clients on {d.tasks} tasks ticking every {d.interval} s, a "
            f"{d.seconds:g} s window, at OPS_SUPABASE_POLL_SECONDS of "
            f"{', '.join(f'{p:g}' for p in scale.polls)} s, the clients on the server running "
            f"the tasks, then on a second server sharing the database{across}; requests: one "
            f"task ticking every {scale.interval} s, {', '.join(map(str, SUBSCRIBERS))} "
            f"subscribers, {scale.window:g} s counted each, polling every {scale.polls[0]:g} s; "
            + supabase_requests.describe(scale.requests))


def rows(results: dict, scale: Scale) -> list[Row]:
    found = []
    for where, suffix in (("clients on the tasks' server", ""),
                          ("clients on another server", "/across")):
        for poll in scale.polls:
            p50 = results.get(f"p50_ms@{poll}{suffix}")
            p99 = results.get(f"p99_ms@{poll}{suffix}")
            limit = poll * 1000 / 2 + 10
            found.append(Row(
                f"Supabase path: delivery p50 / p99, poll every {poll:g} s, {where}",
                f"{number(p50)} / {number(p99)} ms", "– (no persistence)", "–",
                verdict(f"p50 ≤ {limit:g} ms", None if p50 is None else p50 <= limit)))
    rates = [results.get(f"requests_per_s_{n}") for n in SUBSCRIBERS]
    reads = [results.get(f"event_reads_per_s_{n}") for n in SUBSCRIBERS]
    growth = rates[-1] / rates[0] if all(rates) else None
    found.append(Row(
        "Supabase path: store requests/s (event reads/s) with "
        + " / ".join(map(str, SUBSCRIBERS)) + " subscribers on one task",
        " / ".join(f"{number(r)} ({number(e)})" for r, e in zip(rates, reads)),
        "– (no persistence)", f"{growth:.2f}" if growth else "–",
        verdict("independent of subscribers (100 vs 1 within 10%)",
                None if growth is None else growth <= 1.1)))
    return found + supabase_requests.rows(results)
