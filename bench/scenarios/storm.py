"""Reconnect storms: many clients opening their streams at once, and reopening them with
``Last-Event-ID`` after their server restarts. Each storm is measured as its own window (the
clients' catch-up after it is not steady state; the latency scenario measures that).

- **Connect storm**: ``clients`` streams open at once (no cap on concurrent connects) on
  ``tasks`` tasks ticking every ``interval`` seconds. Ours: the in-process store and the dev
  runner, as in the latency scenario. Peer: Flask-SSE with its publishers in a process of
  their own, already publishing. The window runs from the clients' first connect to the
  moment the server holds every stream: ours sends its headers at once, so its clients' own
  times say when; Flask-SSE sends a stream's headers only with its first event, so Redis
  counts its subscriptions, polled every ``POLL_SECONDS`` (not its worker: no load added to
  either side). Its figures: the window's length, and the latency of the events created in
  it at the streams already open when each was created (what ours replays to a stream that
  opened later is not a delivery the peer could make).
- **Restart**: ``restart_clients`` streams on ``restart_tasks`` tasks, open and steady; then
  their server is stopped (TERM, its graceful stop) and started again on the same port, and
  each client reopens its stream ``RECONNECT_DELAY`` seconds after it ended (a refused
  attempt is retried after the same delay), sending the last id it saw. Ours needs a store
  that outlives the process, and tasks that outlive the server: the Supabase store through
  the tests' gateway (``bench/scenarios/supabase.py``), the tasks run by a second server on
  the same database, the clients on the one that restarts. The peer: its gunicorn restarts,
  its publishers and Redis go on. Figures: the time from the stop to the new server
  answering, from then to every stream held again (timed as above), and per stream the tick
  numbers (``data.n``) it missed between its first and last event and the events it got
  twice. Ours must lose and repeat none; Flask-SSE has no replay, so what was published while
  a stream was away is lost for it, and that is reported as is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path

from ..load import StreamClients
from ..procs import say
from ..report import Row, number, ratio, verdict
from ..servers import Ours, Peer
from ..stats import percentile
from . import latency, supabase
from .supabase import READER_POOL

POLL_SECONDS = 0.02  # how often the harness counts the peer's subscriptions in Redis
SLOW_POLL_SECONDS = 0.2  # how often it asks ours, only to know that all are back
RECONNECT_DELAY = 0.5  # the clients' wait before reopening a stream, both sides alike
STEADY_SECONDS = 2.0  # streaming before a restart, and after a storm for its last events
OPEN_TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class Scale:
    clients: int
    tasks: int
    restart_clients: int
    restart_tasks: int
    interval: float = 0.5
    poll: float = 0.1  # OPS_SUPABASE_POLL_SECONDS of the restarting server
    processes: int = 2

    def storm(self) -> latency.Scale:
        return latency.Scale(clients=self.clients, tasks=self.tasks, interval=self.interval,
                             seconds=STEADY_SECONDS * 2 + 30, processes=self.processes)

    def restart(self) -> latency.Scale:
        return latency.Scale(clients=self.restart_clients, tasks=self.restart_tasks,
                             interval=self.interval, seconds=STEADY_SECONDS * 2 + 60,
                             processes=self.processes)


FULL = Scale(clients=1000, tasks=100, restart_clients=1000, restart_tasks=10)
QUICK = Scale(clients=200, tasks=20, restart_clients=100, restart_tasks=5)


def run(scale: Scale, logdir: Path, runs: int, restart: bool) -> list[dict]:
    """``runs`` rounds, ours and the peer alternately; one dict per side and round, with its
    ``side`` and ``run``. ``restart``: also the restart storm (it needs PostgreSQL)."""
    found = []
    with supabase.gateway() if restart else contextlib.nullcontext() as proxy:
        for n in range(runs):
            for side in ("ours", "peer")[n % 2:] + ("ours", "peer")[:n % 2]:
                say(f"storm: run {n + 1} of {runs}, {side}")
                result = {"run": n + 1, "side": side}
                try:
                    result.update(connect_ours(scale, logdir) if side == "ours"
                                  else connect_peer(scale, logdir))
                    if restart:
                        result.update(restart_ours(scale, logdir, proxy) if side == "ours"
                                      else restart_peer(scale, logdir))
                except Exception as error:  # one failed run is reported, the others count
                    say(f"storm: {side} failed: {error}")
                    result["failed"] = str(error)[:500]
                found.append(result)
    return found


def connect_ours(scale: Scale, logdir: Path) -> dict:
    storm = scale.storm()
    with Ours(logdir, side="storm-ours", **latency.dev_settings(storm)) as server:
        paths = latency.start_tasks(server, storm)
        return connect_storm(server, paths, storm, logdir, replays=True)


def connect_peer(scale: Scale, logdir: Path) -> dict:
    storm = scale.storm()
    with Peer(logdir, worker_connections=storm.clients + 200, side="storm-peer") as server:
        server.publish_apart(storm.tasks, storm.ticks, storm.interval)
        paths = [server.stream_path(1 + n % storm.tasks) for n in range(storm.clients)]
        return connect_storm(server, paths, storm, logdir, replays=False,
                             subscribed=lambda: server.streams_open(storm.tasks))


def live(stream: dict, created: float, after: float, replays: bool) -> bool:
    """Whether ``stream`` got the event created at ``created`` live. A server without replay
    (the peer) sends nothing else. On one that replays (ours), only if a connection of the
    stream opened after ``after`` was open, and not lost since, when the event was created;
    otherwise the event came with the replay of a later connection."""
    if not replays:
        return True
    opened = [t for t in stream["opens"] if after <= t < created]
    return bool(opened) and not any(max(opened) < t < created for t in stream["ends"])


def connect_storm(server, paths: list[str], scale: latency.Scale, logdir: Path, *,
                  replays: bool, subscribed=None) -> dict:
    """Open every stream at once; time until the server holds them all, and the latency of
    the events created meanwhile, live at streams already open. ``subscribed()`` counts the
    streams held where the clients cannot tell (the peer's, in Redis); ours send their
    headers at once, so the clients' own times say when it held each."""
    with StreamClients(logdir, server.port, paths, headers=server.headers,
                       processes=scale.processes, connect_concurrency=len(paths),
                       open_timeout=OPEN_TIMEOUT, detail=True) as clients:
        all_held = wait_held(subscribed, len(paths)) if subscribed else None
        opened = clients.wait_open()
        if opened["open"] != len(paths):
            raise RuntimeError(f"{server.side}: only {opened['open']} of {len(paths)} streams "
                               f"opened: {opened['errors']}")
        time.sleep(STEADY_SECONDS)  # the window's last events arrive
        results = clients.finish()
    started = opened["started"]
    if all_held is None:
        all_held = max(stream["opens"][0] for stream in results["streams"])
    latencies = [(arrival - created) * 1000 for stream in results["streams"]
                 for _, _, created, arrival in stream["events"]
                 if started <= created <= all_held and live(stream, created, started, replays)]
    say(f"{server.side}: {len(paths)} streams held {all_held - started:.2f}s after the first "
        f"connect; {len(latencies)} live deliveries in that window")
    figures = {"open_s": all_held - started, "storm_deliveries": len(latencies)}
    if latencies:  # a storm shorter than the ticks' spacing may see no live delivery
        figures.update(storm_p50_ms=percentile(latencies, 50),
                       storm_p99_ms=percentile(latencies, 99), storm_max_ms=max(latencies))
    return figures


def wait_held(held, count: int, timeout: float = OPEN_TIMEOUT,
              every: float = POLL_SECONDS) -> float:
    """Poll ``held()`` until it reaches ``count``; return when it did (Unix seconds)."""
    deadline = time.monotonic() + timeout
    while held() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server held {held()} of {count} streams after "
                               f"{timeout:.0f}s")
        time.sleep(every)
    return time.time()


def restart_ours(scale: Scale, logdir: Path, proxy) -> dict:
    restart = scale.restart()
    env = {**latency.dev_settings(restart), **supabase.settings(proxy, scale.poll)}
    # The reader serves a pool no task is in: it claims none of the writer's tasks from the
    # shared queue, and its restart ends none of them.
    with Ours(logdir, side="storm-writer", **env) as writer, \
            Ours(logdir, side="storm-reader", **env, OPS_POOLS=READER_POOL) as reader:
        task_ids = latency.create_tasks(writer, restart)
        paths = [reader.stream_path(task_ids[n % restart.tasks]) for n in range(restart.clients)]
        return restart_storm(reader, paths, restart, logdir, replays=True,
                             held=lambda: reader.streams_open())


def restart_peer(scale: Scale, logdir: Path) -> dict:
    restart = scale.restart()
    with Peer(logdir, worker_connections=restart.clients + 200,
              side="storm-restart-peer") as server:
        server.publish_apart(restart.tasks, restart.ticks, restart.interval)
        paths = [server.stream_path(1 + n % restart.tasks) for n in range(restart.clients)]
        return restart_storm(server, paths, restart, logdir, replays=False,
                             held=lambda: server.streams_open(restart.tasks), subscribed=True)


def restart_storm(server, paths: list[str], scale: latency.Scale, logdir: Path, *,
                  replays: bool, held, subscribed: bool = False) -> dict:
    """Open the streams, restart the server, let every client come back; check what each
    stream got. ``held()`` counts the streams the server holds; with ``subscribed`` its
    count, polled every ``POLL_SECONDS``, times the reconnection (the peer's), else the
    clients' own times do and it is polled only to know when they are all back (each poll
    of ours is a request to the worker under test)."""
    with StreamClients(logdir, server.port, paths, headers=server.headers,
                       processes=scale.processes, open_timeout=OPEN_TIMEOUT,
                       reconnect_delay=RECONNECT_DELAY, detail=True) as clients:
        opened = clients.wait_open()
        if opened["open"] != len(paths):
            raise RuntimeError(f"{server.side}: only {opened['open']} of {len(paths)} streams "
                               f"opened: {opened['errors']}")
        wait_held(held, len(paths), every=SLOW_POLL_SECONDS)
        time.sleep(STEADY_SECONDS)
        stopped = time.time()
        server.restart()
        up = time.time()  # the new server answers
        all_held = wait_held(held, len(paths),
                             every=POLL_SECONDS if subscribed else SLOW_POLL_SECONDS)
        time.sleep(STEADY_SECONDS)
        results = clients.finish()
    streams = results["streams"]
    if not subscribed:  # the last stream's first opening after the stop
        all_held = max(min((t for t in stream["opens"] if t > stopped), default=math.inf)
                       for stream in streams)
    lost, repeated, delivered = losses(streams)
    reopened = sum(any(t > stopped for t in stream["opens"]) for stream in streams)
    latencies = [(arrival - created) * 1000 for stream in streams
                 for _, _, created, arrival in stream["events"]
                 if up <= created <= all_held and live(stream, created, stopped, replays)]
    say(f"{server.side}: restarted in {up - stopped:.2f}s; {reopened} of {len(paths)} streams "
        f"reopened, all held {all_held - up:.2f}s after it answered; {lost} events lost, "
        f"{repeated} repeated")
    return {"restart_down_s": up - stopped, "restart_open_s": all_held - up,
            "restart_reopened": reopened,
            "restart_lost": lost, "restart_repeated": repeated,
            "restart_delivered": delivered, "restart_live": len(latencies),
            **({"restart_p99_ms": percentile(latencies, 99)} if latencies else {})}


def losses(streams: list[dict]) -> tuple[int, int, int]:
    """Ticks lost, ticks repeated and ticks delivered, over ``streams`` (each one task's):
    a tick number missing between a stream's first and last is lost, an id seen twice is
    repeated."""
    lost = repeated = delivered = 0
    for stream in streams:
        ticks = [(event_id, n) for event_id, n, _, _ in stream["events"] if n is not None]
        ids = [event_id for event_id, _ in ticks]
        numbers = {n for _, n in ticks}
        delivered += len(ticks)
        repeated += len(ids) - len(set(ids))
        if numbers:
            lost += (max(numbers) - min(numbers) + 1) - len(numbers)
    return lost, repeated, delivered


def describe(scale: Scale) -> str:
    return (f"connect storm: {scale.clients:,} clients opening at once on {scale.tasks} tasks "
            f"ticking every {scale.interval} s (ours: in-process store; the peer: its "
            f"publishers in another process, already publishing), timed until the server holds "
            f"every stream (ours: its clients' times, its headers coming at once; the peer's "
            f"subscriptions counted by Redis every {POLL_SECONDS * 1000:.0f} ms); restart: "
            f"{scale.restart_clients:,} clients on {scale.restart_tasks} tasks, their server "
            f"stopped (TERM) and started again, each client reopening {RECONNECT_DELAY} s after "
            f"its stream ended, with `Last-Event-ID`; ours on the Supabase store (the tests' "
            f"gateway, OPS_SUPABASE_POLL_SECONDS={scale.poll:g}), its tasks run by a second "
            f"server on the same database; the peer's gunicorn restarted, its publishers and "
            f"Redis running on.")


def rows(ours: dict, peer: dict, scale: Scale) -> list[Row]:
    def row(label, key, unit, target=""):
        return Row(label, f"{number(ours.get(key), 2)} {unit}",
                   f"{number(peer.get(key), 2)} {unit}", ratio(ours.get(key), peer.get(key)),
                   target)

    def count(side: dict) -> str:
        return (f"{number(side.get('restart_lost'), 0)} / "
                f"{number(side.get('restart_repeated'), 0)} of "
                f"{number(side.get('restart_delivered'), 0)}")

    clients, again = f"{scale.clients:,} clients", f"{scale.restart_clients:,} clients"
    lost, repeated = ours.get("restart_lost"), ours.get("restart_repeated")
    return [
        row(f"Connect storm: all streams held after ({clients} at once)", "open_s", "s"),
        row(f"Connect storm: latency p99 of the events created meanwhile ({clients})",
            "storm_p99_ms", "ms", verdict("≤ the peer's", latency.at_most(
                ours.get("storm_p99_ms"), peer.get("storm_p99_ms")))),
        row(f"Restart: from the stop to the new server answering ({again})",
            "restart_down_s", "s"),
        row(f"Restart: all streams held again after it answers ({again})", "restart_open_s",
            "s"),
        Row(f"Restart: ticks lost / repeated of those delivered, reconnecting streams "
            f"({again})", count(ours), count(peer), "–",
            verdict("none lost or repeated (ours)", None if lost is None or repeated is None
                    else lost == 0 and repeated == 0)),
        row(f"Restart: latency p99 of the events created while they reconnect, at streams "
            f"already back ({again})", "restart_p99_ms", "ms"),
    ]
