"""Delivery latency and CPU per delivered event: many clients streaming running tasks.

Ours: ``tasks`` dev-runner tasks ticking every ``interval`` seconds (OPS_DEV_TICKS makes them
last the whole run), started evenly over one interval, ``clients`` streams spread evenly over
them. The peer, in both of Flask-SSE's deployments: the same number of publishers, each
``sse.publish``-ing on its own channel at the same interval, in its worker (side ``peer``) or
in a process of their own (side ``peer_apart``: Redis fans the events out, the worker only
forwards them); the same clients on those channels. Publishing starts before the clients
connect, on both sides. ``steady`` seconds after every stream is open (the clients have
caught up with what was replayed to them), a window of ``seconds`` counts: the latency of
each event created in it (arrival at the client minus the event's ``created_at``), the
worker's CPU over the events that arrived in it (for the peer, the worker's plus
redis-server's; not the publisher process's), and for ours each full garbage collection
(``bench/gcprobe.py``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from ..load import StreamClients
from ..procs import say
from ..report import Row, number, ratio, verdict
from ..servers import Ours, Peer
from ..stats import percentile

SETTLE_SECONDS = 1.0  # after the window, for the last events' arrival
SETUP_SECONDS = 60.0  # the tasks outlive the stream opening by this much


@dataclasses.dataclass(frozen=True)
class Scale:
    clients: int
    tasks: int
    interval: float
    seconds: float
    processes: int = 1
    steady: float = 0.0  # seconds from the last stream's opening to the window's start

    @property
    def ticks(self) -> int:
        return math.ceil((SETUP_SECONDS + self.steady + self.seconds) / self.interval)


FULL = Scale(clients=1000, tasks=100, interval=0.5, seconds=15, steady=2.0)
QUICK = Scale(clients=100, tasks=10, interval=0.5, seconds=4, steady=1.0)


def run_ours(scale: Scale, logdir: Path, **checkout) -> dict:
    with Ours(logdir, gc_probe=True, **checkout, **dev_settings(scale)) as server:
        return measure(server, start_tasks(server, scale), scale, logdir)


def dev_settings(scale: Scale) -> dict[str, str]:
    """Our settings for ``scale``: dev tasks ticking through the whole run, all at once."""
    return {"OPS_DEV_TICK_SECONDS": str(scale.interval), "OPS_DEV_TICKS": str(scale.ticks),
            "OPS_WORKERS": str(scale.tasks), "OPS_MAX_STREAMS": str(scale.clients + 100),
            "OPS_WORKER_CONNECTIONS": str(scale.clients + 200)}


def create_tasks(server: Ours, scale: Scale) -> list[int]:
    """Create the tasks, their starts spread evenly over one interval as independent tasks'
    would be; return their ids."""
    task_ids = []
    start = time.monotonic()
    for n in range(scale.tasks):
        time.sleep(max(0.0, start + n * scale.interval / scale.tasks - time.monotonic()))
        task_ids.append(server.create_task(f"bench {n}"))
    return task_ids


def start_tasks(server: Ours, scale: Scale) -> list[str]:
    """Create the tasks (:func:`create_tasks`); return the clients' stream paths, spread
    evenly over the tasks."""
    task_ids = create_tasks(server, scale)
    return [server.stream_path(task_ids[n % scale.tasks]) for n in range(scale.clients)]


def run_peer(scale: Scale, logdir: Path) -> dict:
    """The peer, its publishers in its worker."""
    with Peer(logdir, worker_connections=scale.clients + 200) as server:
        server.publish(scale.tasks, scale.ticks, scale.interval)
        paths = [server.stream_path(1 + n % scale.tasks) for n in range(scale.clients)]
        return measure(server, paths, scale, logdir)


def run_peer_apart(scale: Scale, logdir: Path) -> dict:
    """The peer, its publishers in a process of their own."""
    with Peer(logdir, worker_connections=scale.clients + 200, side="peer_apart") as server:
        server.publish_apart(scale.tasks, scale.ticks, scale.interval)
        paths = [server.stream_path(1 + n % scale.tasks) for n in range(scale.clients)]
        return measure(server, paths, scale, logdir)


# Sides beyond ours and the peer, run alternately with them (bench/__main__.py).
EXTRA_SIDES = {"peer_apart": run_peer_apart}


def measure(server, paths: list[str], scale: Scale, logdir: Path) -> dict:
    with StreamClients(logdir, server.port, paths, headers=server.headers,
                       processes=scale.processes) as clients:
        opened = clients.wait_open()
        say(f"{server.side}: {opened['open']} streams open; measuring {scale.seconds:.0f}s")
        if opened["open"] != len(paths):
            raise RuntimeError(f"{server.side}: only {opened['open']} of {len(paths)} streams "
                               f"opened: {opened['errors']}")
        time.sleep(scale.steady)
        start, cpu_start = time.time(), server.cpu_seconds()
        clients_cpu_start, delay_start = clients.cpu_seconds(), server.run_delay_seconds()
        time.sleep(scale.seconds)
        cpu_end, end = server.cpu_seconds(), time.time()
        clients_cpu = clients.cpu_seconds() - clients_cpu_start
        delay = server.run_delay_seconds() - delay_start
        time.sleep(SETTLE_SECONDS)
        results = clients.finish()
    if results["closed_early"]:
        raise RuntimeError(f"{server.side}: {results['closed_early']} streams ended early")
    events = results["events"]
    latencies_ms = [(arrival - created) * 1000 for created, arrival in events
                    if start <= created <= end]
    delivered = sum(start <= arrival <= end for _, arrival in events)
    expected = len(paths) * scale.seconds / scale.interval
    if len(latencies_ms) < 0.1 * expected:
        raise RuntimeError(f"{server.side}: {len(latencies_ms)} events measured, "
                           f"about {expected:.0f} expected")
    pauses = server.full_collections(start, end) if hasattr(server, "full_collections") else []
    gc_figures = ({"gc_full_count": len(pauses), "gc_full_max_ms": max(pauses, default=0) * 1000}
                  if getattr(server, "gc_log", None) else {})
    return {"p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "max_ms": max(latencies_ms), "events": len(latencies_ms), **gc_figures,
            "events_per_s": delivered / (end - start),
            "cpu_us_per_event": (cpu_end - cpu_start) / max(1, delivered) * 1e6,
            "cpu_share": (cpu_end - cpu_start) / (end - start),
            "delivered_share": len(latencies_ms) / expected,
            "clients_cpu_share": clients_cpu / (end - start),
            "worker_cpu_wait_share": delay / (end - start)}


def describe(scale: Scale) -> str:
    rate = scale.tasks / scale.interval
    return (f"{scale.clients:,} clients on {scale.tasks} running tasks "
            f"({scale.clients // scale.tasks} per task), one event per task every "
            f"{scale.interval} s ({rate:.0f} events/s published, "
            f"{rate * scale.clients / scale.tasks:,.0f} deliveries/s), a {scale.seconds:.0f} s "
            f"window from {scale.steady:g} s after every stream is open; ours on the in-process "
            "store with the dev runner (OPS_DEV_TICK_SECONDS, OPS_DEV_TICKS), the peer's "
            "publishers calling `sse.publish` in its worker (\"peer\") or in a process of "
            "their own (\"peer, publishers apart\"), already publishing while the clients "
            "connect. Full collections are ours', timed in its worker by `bench/gcprobe.py`.")


def at_most(ours: float | None, limit: float | None) -> bool | None:
    """Whether ``ours`` is within ``limit``; None when either was not measured."""
    return None if ours is None or limit is None else ours <= limit


def rows(medians: dict[str, dict], scale: Scale) -> list:
    ours = medians["ours"]
    clients = f"{scale.clients:,} clients"

    def row(label, key, unit, peer, target=""):
        return Row(label, f"{number(ours.get(key), 2)} {unit}",
                   f"{number(peer.get(key), 2)} {unit}", ratio(ours.get(key), peer.get(key)),
                   target)

    found = []
    for side, setup in (("peer", "publishers in its worker"),
                        ("peer_apart", "publishers in another process")):
        peer = medians.get(side, {})
        p99, peer_p99 = ours.get("p99_ms"), peer.get("p99_ms")
        p99_met = at_most(p99, peer_p99)
        found += [
            row(f"Delivery latency p50 ({clients}; peer: {setup})", "p50_ms", "ms", peer,
                verdict("≤ 2 ms", at_most(ours.get("p50_ms"), 2))),
            row(f"Delivery latency p99 ({clients}; peer: {setup})", "p99_ms", "ms", peer,
                verdict("≤ 20 ms and ≤ the peer's",
                        None if p99_met is None else p99_met and p99 <= 20)),
            row(f"Delivery latency max, steady state ({clients}; peer: {setup})", "max_ms",
                "ms", peer, verdict("≤ the peer's", at_most(ours.get("max_ms"),
                                                         peer.get("max_ms")))),
            row(f"CPU per delivered event ({clients}; peer: {setup}; worker + redis-server)",
                "cpu_us_per_event", "µs", peer),
        ]
    found += [
        row(f"Events delivered per second ({clients})", "events_per_s", "/s", medians["peer"]),
        Row("Full collections in the window, longest (ours)",
            f"{number(ours.get('gc_full_count'), 0)}, "
            f"{number(ours.get('gc_full_max_ms'), 1)} ms", "–", "–"),
    ]
    return found
