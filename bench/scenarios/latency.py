"""Delivery latency and CPU per delivered event: many clients streaming running tasks.

Ours: ``tasks`` dev-runner tasks ticking every ``interval`` seconds (OPS_DEV_TICKS makes them
last the whole run), started evenly over one interval, ``clients`` streams spread evenly over
them. Peer: the same number of
publishers in its worker, each ``sse.publish``-ing on its own channel at the same interval,
the same clients on those channels. Once every stream is open, a window of ``seconds``
counts: the latency of each event created in it (arrival at the client minus the event's
``created_at``) and the worker's CPU over the events that arrived in it (for the peer, the
worker's plus redis-server's).
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

    @property
    def ticks(self) -> int:
        return math.ceil((SETUP_SECONDS + self.seconds) / self.interval)


FULL = Scale(clients=1000, tasks=100, interval=0.5, seconds=15)
QUICK = Scale(clients=100, tasks=10, interval=0.5, seconds=4)


def run_ours(scale: Scale, logdir: Path, **checkout) -> dict:
    with Ours(logdir, **checkout, **dev_settings(scale)) as server:
        return measure(server, start_tasks(server, scale), scale, logdir)


def dev_settings(scale: Scale) -> dict[str, str]:
    """Our settings for ``scale``: dev tasks ticking through the whole run, all at once."""
    return {"OPS_DEV_TICK_SECONDS": str(scale.interval), "OPS_DEV_TICKS": str(scale.ticks),
            "OPS_WORKERS": str(scale.tasks), "OPS_MAX_STREAMS": str(scale.clients + 100),
            "OPS_WORKER_CONNECTIONS": str(scale.clients + 200)}


def start_tasks(server: Ours, scale: Scale) -> list[str]:
    """Create the tasks, their starts spread evenly over one interval as independent tasks'
    would be; return the clients' stream paths, spread evenly over the tasks."""
    task_ids = []
    start = time.monotonic()
    for n in range(scale.tasks):
        time.sleep(max(0.0, start + n * scale.interval / scale.tasks - time.monotonic()))
        task_ids.append(server.create_task(f"bench {n}"))
    return [server.stream_path(task_ids[n % scale.tasks]) for n in range(scale.clients)]


def run_peer(scale: Scale, logdir: Path) -> dict:
    with Peer(logdir, worker_connections=scale.clients + 200) as server:
        server.publish(scale.tasks, scale.ticks, scale.interval)
        paths = [server.stream_path(1 + n % scale.tasks) for n in range(scale.clients)]
        return measure(server, paths, scale, logdir)


def measure(server, paths: list[str], scale: Scale, logdir: Path) -> dict:
    with StreamClients(logdir, server.port, paths, headers=server.headers,
                       processes=scale.processes) as clients:
        opened = clients.wait_open()
        say(f"{server.side}: {opened['open']} streams open; measuring {scale.seconds:.0f}s")
        if opened["open"] != len(paths):
            raise RuntimeError(f"{server.side}: only {opened['open']} of {len(paths)} streams "
                               f"opened: {opened['errors']}")
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
    return {"p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "max_ms": max(latencies_ms), "events": len(latencies_ms),
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
            "window once every stream is open; ours on the in-process store with the dev runner "
            "(OPS_DEV_TICK_SECONDS, OPS_DEV_TICKS), the peer's publishers calling `sse.publish` "
            "in its worker.")


def rows(ours: dict, peer: dict, scale: Scale) -> list:
    def row(label, key, unit, target=""):
        return Row(f"{label} ({scale.clients:,} clients)", f"{number(ours.get(key), 2)} {unit}",
                   f"{number(peer.get(key), 2)} {unit}", ratio(ours.get(key), peer.get(key)),
                   target)

    p50, p99, peer_p99 = ours.get("p50_ms"), ours.get("p99_ms"), peer.get("p99_ms")
    return [
        row("Delivery latency p50", "p50_ms", "ms",
            verdict("≤ 2 ms", None if p50 is None else p50 <= 2)),
        row("Delivery latency p99", "p99_ms", "ms",
            verdict("≤ 20 ms and ≤ the peer's",
                    None if p99 is None else p99 <= 20 and p99 <= (peer_p99 or 0))),
        row("Delivery latency max", "max_ms", "ms"),
        row("Events delivered per second", "events_per_s", "/s"),
        row("CPU per delivered event (peer: worker + redis-server)", "cpu_us_per_event", "µs"),
    ]

