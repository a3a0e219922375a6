"""Concurrent idle streams on one worker: memory per stream, and heartbeats on time.

Ours: ``streams`` streams over ``tasks`` tasks that wait for a worker (nothing happens on
them), heartbeat every ``heartbeat`` seconds. RSS per stream is the worker's growth from
before the first stream to when all are open, over their count. Then for ``periods``
heartbeats every stream's messages are timed: a gap between two is on time when it is at most
the heartbeat plus ``LATE_SLACK``.

Peer: Flask-SSE sends no heartbeat of its own, so, as its users do to keep proxies from
cutting idle streams, a publisher sends one keep-alive event per channel every ``heartbeat``
seconds. Each of its streams holds two sockets in the worker (the client's and its own Redis
subscription), so the open-file limit caps how many it can hold; its RSS counts the worker
and redis-server.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from ..load import StreamClients
from ..procs import raise_fd_limit, say
from ..report import Row, number, ratio, verdict
from ..servers import Ours, Peer
from ..stats import percentile

LATE_SLACK = 1.0  # seconds past the heartbeat before a gap counts as late
FDS_SPARE = 1000  # open files the peer's worker needs beside its streams (logs, pools, publishers)


@dataclasses.dataclass(frozen=True)
class Scale:
    streams: int
    tasks: int
    heartbeat: float
    periods: int
    processes: int = 2


FULL = Scale(streams=10_000, tasks=100, heartbeat=5.0, periods=3)
QUICK = Scale(streams=500, tasks=10, heartbeat=1.0, periods=2)


def peer_streams(scale: Scale) -> int:
    """The peer's stream count: the target, or as many as the open-file limit lets it hold."""
    return min(scale.streams, (raise_fd_limit() - FDS_SPARE) // 2)


def run_ours(scale: Scale, logdir: Path, **checkout) -> dict:
    settings = {"OPS_MAX_STREAMS": str(scale.streams + 100),
                "OPS_WORKER_CONNECTIONS": str(scale.streams + 200),
                "OPS_HEARTBEAT_SECONDS": str(scale.heartbeat), "OPS_DEV_TICK_SECONDS": "3600",
                "OPS_WORKERS": "1", "OPS_QUEUE_SIZE": str(scale.tasks)}
    with Ours(logdir, **checkout, **settings) as server:
        task_ids = [server.create_task(f"idle {n}") for n in range(scale.tasks)]
        paths = [server.stream_path(task_ids[n % scale.tasks]) for n in range(scale.streams)]
        return measure(server, paths, scale, logdir)


def run_peer(scale: Scale, logdir: Path) -> dict:
    count = peer_streams(scale)
    with Peer(logdir, worker_connections=count + 200) as server:
        server.publish(scale.tasks, ticks=math.ceil(900 / scale.heartbeat),
                       interval=scale.heartbeat, kind="keepalive")
        paths = [server.stream_path(1 + n % scale.tasks) for n in range(count)]
        return measure(server, paths, scale, logdir)


def measure(server, paths: list[str], scale: Scale, logdir: Path) -> dict:
    rss_before = server.rss_kib()
    with StreamClients(logdir, server.port, paths, headers=server.headers, keep_pings=True,
                       processes=scale.processes, open_timeout=120,
                       max_seconds=600) as clients:
        opened = clients.wait_open()
        say(f"{server.side}: {opened['open']} streams open; timing heartbeats")
        if opened["open"] != len(paths):
            raise RuntimeError(f"{server.side}: only {opened['open']} of {len(paths)} streams "
                               f"opened: {opened['errors']}")
        rss_open = server.rss_kib()
        start = time.time()
        time.sleep(scale.heartbeat * (scale.periods + 1))
        end = time.time()
        rss_end = server.rss_kib()
        results = clients.finish()
    if results["closed_early"]:
        raise RuntimeError(f"{server.side}: {results['closed_early']} streams ended early")
    gaps = [later - earlier for arrivals in results["pings"]
            for earlier, later in zip(arrivals, arrivals[1:]) if start <= earlier and later <= end]
    expected_gaps = len(paths) * (scale.periods - 1)
    if len(gaps) < expected_gaps:
        # a stream that fell silent shows as too few gaps: count each missing one as late
        gaps += [math.inf] * (expected_gaps - len(gaps))
    late = sum(gap > scale.heartbeat + LATE_SLACK for gap in gaps)
    return {"streams": len(paths), "rss_kib_per_stream": (rss_open - rss_before) / len(paths),
            "rss_mib_total": rss_end / 1024,
            "heartbeat_gap_p99_s": percentile(gaps, 99), "heartbeat_gap_max_s": max(gaps),
            "heartbeats_late": late, "heartbeat_gaps": len(gaps)}


def describe(scale: Scale) -> str:
    return (f"up to {scale.streams:,} idle streams over {scale.tasks} tasks, opened "
            f"{scale.processes} client processes wide; heartbeat every {scale.heartbeat} s "
            f"(OPS_HEARTBEAT_SECONDS), timed over {scale.periods + 1} periods; a gap is late "
            f"above {scale.heartbeat + LATE_SLACK} s. OPS_MAX_STREAMS and "
            "OPS_WORKER_CONNECTIONS raised above the count; `ulimit -n` raised to the hard "
            f"limit ({raise_fd_limit():,}). The peer holds two sockets per stream, so it runs "
            f"{peer_streams(scale):,} streams, and a keep-alive event per channel stands in "
            "for the heartbeat it lacks.")


def rows(ours: dict, peer: dict, scale: Scale) -> list:
    per_stream = ours.get("rss_kib_per_stream")
    late = ours.get("heartbeats_late")
    return [
        Row("Idle streams held on one worker", number(ours.get("streams"), 0),
            number(peer.get("streams"), 0), ratio(ours.get("streams"), peer.get("streams")),
            verdict(f"{scale.streams:,}", ours.get("streams", 0) >= scale.streams)),
        Row("RSS per stream (peer: worker + redis-server)", f"{number(per_stream)} KiB",
            f"{number(peer.get('rss_kib_per_stream'))} KiB",
            ratio(per_stream, peer.get("rss_kib_per_stream")),
            verdict("≤ 12 KiB", None if per_stream is None else per_stream <= 12)),
        Row(f"Heartbeat gap p99 / max (every {scale.heartbeat:g} s)",
            f"{number(ours.get('heartbeat_gap_p99_s'), 2)} / "
            f"{number(ours.get('heartbeat_gap_max_s'), 2)} s",
            f"{number(peer.get('heartbeat_gap_p99_s'), 2)} / "
            f"{number(peer.get('heartbeat_gap_max_s'), 2)} s",
            ratio(ours.get("heartbeat_gap_p99_s"), peer.get("heartbeat_gap_p99_s"))),
        Row("Heartbeat gaps late (or missing)",
            f"{number(late, 0)} of {number(ours.get('heartbeat_gaps'), 0)}",
            f"{number(peer.get('heartbeats_late'), 0)} of "
            f"{number(peer.get('heartbeat_gaps'), 0)}", "–",
            verdict("on time", late == 0 if late is not None else None)),
    ]
