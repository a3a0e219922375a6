"""What one process asks of Supabase, counted at the PostgREST stand-in (part of the Supabase
scenario, on its gateway):

- **Reads while watching tasks.** One server (one gevent worker) streams 1, 10, 100 and
  1,000 tasks, one client each; the tasks are inserted straight into PostgreSQL as running
  (no process of ours owns them, so the server sends no cancel check and no lease), and a
  writer inserts events into them, 20 a second in all, spread over the tasks. After the
  streams are open and replayed, the gateway counts the GETs over a window. Target: at most
  about three reads per poll interval whatever the count. ``--compare REV`` measures the
  same with ours as of REV (side "before").
- **Creating tasks.** ``POST /ops/tasks`` one after the other on a server whose one executor
  worker is taken by a long task (so the tasks created stay queued and only the creates
  write); the gateway counts the inserts, and the harness times each create and, between
  two creates, a trivial request of its own through the same official client (one row of
  ``va_concurrency_locks``): the store's round trip in the same minutes. Targets: at most
  2 requests per create, and a create's p50 within two round trips' p50 plus 2 ms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import statistics
import threading
import time
from pathlib import Path

from ..load import StreamClients
from ..procs import say
from ..report import Row, number, verdict
from ..servers import Ours, request

WATCHED = (1, 10, 100, 1000)
WRITES_PER_SECOND = 20
POLL = 0.5  # the default OPS_SUPABASE_POLL_SECONDS
READS_PER_INTERVAL = 3
OPENING = 100  # streams opened at a time


@dataclasses.dataclass(frozen=True)
class Scale:
    window: float  # seconds of counting per watched-task count
    creates: int


FULL = Scale(window=10, creates=300)
QUICK = Scale(window=4, creates=60)


def quiet_env(proxy) -> dict[str, str]:
    """The gateway, the default poll interval, and no lease round or sweep in a window (the
    first one comes one poll after start; the next ten minutes later)."""
    return {**proxy.env, "OPS_SUPABASE_POLL_SECONDS": str(POLL),
            "OPS_SUPABASE_TIMEOUT_SECONDS": "30", "OPS_SUPABASE_LEASE_SECONDS": "600",
            "OPS_SUPABASE_ORPHAN_SECONDS": "3600"}


# -- reads while watching -------------------------------------------------------------------


def running_tasks(dsn: str, count: int) -> list[int]:
    """``count`` running tasks with their created and status events, owned by nobody."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO va_tasks (title, status) SELECT 'watched ' || n, 'running' "
            "FROM generate_series(1, %s) n RETURNING id", (count,))]
        for kind, data in (("created", {"body": None, "runner": "dev"}),
                           ("status", {"status": "running"})):
            conn.execute("INSERT INTO va_task_events (task_id, kind, data_json) "
                         "SELECT unnest(%s::bigint[]), %s, %s::jsonb",
                         (ids, kind, json.dumps(data)))
    return ids


class Writer(threading.Thread):
    """Inserts ``WRITES_PER_SECOND`` events a second into random tasks of ``ids``."""

    def __init__(self, dsn: str, ids: list[int]):
        super().__init__(daemon=True)
        self.dsn, self.ids = dsn, ids
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            n = 0
            while not self.stopping.wait(1 / WRITES_PER_SECOND):
                n += 1
                conn.execute("INSERT INTO va_task_events (task_id, kind, data_json) "
                             "VALUES (%s, 'tick', %s::jsonb)",
                             (random.choice(self.ids), json.dumps({"n": n})))


def reads_while_watching(proxy, count: int, window: float, logdir: Path, side: str,
                         root: Path | None) -> dict[str, float]:
    """GETs a second, by table, of one server streaming ``count`` tasks."""
    ids = running_tasks(proxy.dsn, count)
    env = {**quiet_env(proxy), "OPS_MAX_STREAMS": "5000", "OPS_WORKER_CONNECTIONS": "5000",
           # No heartbeat in the window: an idle stream's heartbeat reads its task (see
           # bench/notes.md), a cost per stream, not per poll.
           "OPS_HEARTBEAT_SECONDS": "120"}
    extra = {"root": root} if root is not None else {}
    writer = Writer(proxy.dsn, ids)
    with Ours(logdir, side=f"{side}-watching-{count}", **env, **extra) as server, \
            contextlib.ExitStack() as clients:
        # A hundred streams at a time: each opening reads its task before it answers, and a
        # thousand at once through the stand-in wait longer than the store's timeout.
        batches = []
        for start in range(0, count, OPENING):
            paths = [server.stream_path(task_id) for task_id in ids[start:start + OPENING]]
            batches.append(clients.enter_context(StreamClients(logdir, server.port, paths,
                                                               headers=server.headers)))
            opened = batches[-1].wait_open()["open"]
            if opened != len(paths):
                raise RuntimeError(f"only {opened} of {len(paths)} streams opened")
        writer.start()
        try:
            time.sleep(4 * POLL + 1)  # the replays of the streams' first reads
            proxy.reset_counts()
            started = time.monotonic()
            time.sleep(window)
            counts = proxy.counts()
            elapsed = time.monotonic() - started
        finally:
            writer.stopping.set()
            writer.join(10)
        delivered = sum(len(batch.finish()["events"]) for batch in batches)
    reads = {key.split()[1]: value / elapsed for key, value in counts.items()
             if key.startswith("GET ")}
    return {"gets_per_s": sum(reads.values()),
            "event_gets_per_s": reads.get("va_task_events", 0.0),
            "events_delivered": delivered}


def watching(proxy, scale: Scale, logdir: Path, before: Path | None) -> dict[str, float]:
    sides = [("ours", None)] + ([("before", before)] if before is not None else [])
    found = {}
    for count in WATCHED:
        for side, root in sides:
            say(f"supabase: GETs of one server watching {count} tasks ({side})")
            try:
                result = reads_while_watching(proxy, count, scale.window, logdir, side, root)
            except Exception as error:  # the other counts still count
                say(f"supabase: watching {count} tasks ({side}) failed: {error}")
                continue
            for key, value in result.items():
                found[f"{key}_{count}" + ("/before" if side == "before" else "")] = value
    return found


# -- creating -------------------------------------------------------------------------------


def empty_tables(proxy) -> None:
    with proxy.postgres.connect("ops") as conn:
        conn.execute("TRUNCATE va_workers, va_tasks RESTART IDENTITY CASCADE")


def creating(proxy, scale: Scale, logdir: Path) -> dict[str, float]:
    """Requests per create and create latency against the store's round trip."""
    from app.store.supabase.rest import LOCKS, SupabaseRest

    # The queue every process shares holds whatever earlier measurements left queued: the
    # tables start empty, the bound is out of the way, and the tasks left queued here are
    # deleted afterwards (the next server would claim them).
    empty_tables(proxy)
    env = {**quiet_env(proxy), "OPS_WORKERS": "1", "OPS_QUEUE_SIZE": "100000",
           "OPS_DEV_TICK_SECONDS": "3600", "OPS_DEV_TICKS": "1"}
    rest = SupabaseRest(proxy.url, proxy.key, 10)
    trivial = lambda: rest.run(rest.table(LOCKS).select("group_name").limit(1))  # noqa: E731
    creates, trips = [], []
    say(f"supabase: {scale.creates} creates, each followed by a trivial store request")
    with Ours(logdir, side="supabase-creates", **env) as server:
        server.create_task("takes the one worker")
        for _ in range(5):  # warm both clients up
            trivial()
            server.create_task("warm-up")
        time.sleep(2 * POLL)  # past the first lease round's sweep
        proxy.reset_counts()
        for n in range(scale.creates):
            started = time.perf_counter()
            status, answer = request(server.port, "POST", "/ops/tasks", {"title": f"t{n}"},
                                     server.headers)
            creates.append(time.perf_counter() - started)
            if status != 201:
                raise RuntimeError(f"POST /ops/tasks answered {status}: {answer}")
            started = time.perf_counter()
            trivial()
            trips.append(time.perf_counter() - started)
        counts = proxy.counts()
    rest.close()
    empty_tables(proxy)
    writes = counts.get("POST va_tasks", 0) + counts.get("POST va_task_events", 0)
    others = sum(counts.values()) - writes - counts.get(f"GET {LOCKS}", 0)
    return {"requests_per_create": writes / scale.creates,
            "other_requests_per_create": others / scale.creates,
            "create_p50_ms": statistics.median(creates) * 1000,
            "round_trip_p50_ms": statistics.median(trips) * 1000}


def run(proxy, scale: Scale, logdir: Path, before: Path | None) -> dict[str, float]:
    return {**watching(proxy, scale, logdir, before), **creating(proxy, scale, logdir)}


def describe(scale: Scale) -> str:
    return (f"reads: one server at OPS_SUPABASE_POLL_SECONDS={POLL:g} streaming "
            f"{', '.join(f'{n:,}' for n in WATCHED)} running tasks (one client each) that "
            f"receive {WRITES_PER_SECOND} events a second in all, GETs counted by the gateway "
            f"over {scale.window:g} s; creates: {scale.creates} POST /ops/tasks one after the "
            f"other, each followed by a trivial store request from the harness.")


def rows(results: dict) -> list[Row]:
    gets = [results.get(f"gets_per_s_{n}") for n in WATCHED]
    before = [results.get(f"gets_per_s_{n}/before") for n in WATCHED]
    per_interval = [g * POLL for g in gets if g is not None]
    met = max(per_interval) <= READS_PER_INTERVAL if len(per_interval) == len(WATCHED) else None
    shown = " / ".join(number(g) for g in gets)
    if any(b is not None for b in before):
        shown += " (before: " + " / ".join(number(b) for b in before) + ")"
    found = [Row(
        f"Supabase path: GETs/s of one server watching {' / '.join(f'{n:,}' for n in WATCHED)} "
        f"tasks (poll every {POLL:g} s)", shown, "– (no persistence)",
        "–", verdict(f"≤ ~{READS_PER_INTERVAL} reads per interval", met))]
    per_create = results.get("requests_per_create")
    create, trip = results.get("create_p50_ms"), results.get("round_trip_p50_ms")
    found.append(Row(
        "Supabase path: requests per create (and others per create: audit batches, the "
        "running task's cancel checks)",
        f"{number(per_create, 2)} ({number(results.get('other_requests_per_create'), 2)})",
        "– (no persistence)", "–",
        verdict("≤ 2", None if per_create is None else per_create <= 2)))
    limit = None if trip is None else 2 * trip + 2
    found.append(Row(
        "Supabase path: create p50 / store round trip p50", f"{number(create, 2)} / "
        f"{number(trip, 2)} ms", "– (no persistence)", "–",
        verdict("≤ 2 round trips + 2 ms", None if create is None else create <= limit)))
    return found
