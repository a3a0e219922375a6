"""The peer app: Flask-SSE's blueprint at ``/stream?channel=...``, used as its docs show, and
publishers that stand in for running tasks.

Two changes from Flask-SSE as shipped, both in its favour, as a careful user would make
them, so that the comparison is of pub/sub and not of connection set-up: its ``redis``
property builds a new client, and so a new connection, for every publish; here one client
(one connection pool) per process is kept. And redis-py 8 reads its own package metadata
from disk for every new connection (each stream's subscription is one); here that is read
once.

``POST /publish {"channels", "ticks", "interval", "kind"}`` starts one publisher per channel
(``task-1`` ... ``task-N``) in this worker, as our dev runner runs in ours, their starts
spread over one interval: each sleeps ``interval``, then ``sse.publish``-es an event shaped
like ours (id, task_id, kind, created_at, data), ``ticks`` times. The other deployment,
publishers in a process of their own, is :mod:`bench.peer.publisher`, on the same schedule.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import datetime, timezone

from flask import Flask, current_app, jsonify, request
from flask_sse import ServerSentEventsBlueprint
from redis import StrictRedis
from redis.driver_info import DriverInfo

MAX_CHANNELS = 100_000
MAX_TICKS = 100_000
MAX_CONNECTIONS = 1_000_000


class PooledServerSentEvents(ServerSentEventsBlueprint):
    """Flask-SSE's blueprint with one Redis client (and connection pool) per app."""

    @property
    def redis(self) -> StrictRedis:
        client = current_app.extensions.get("peer_redis")
        if client is None:
            # each stream holds a pooled connection for its subscription: no cap on them
            client = current_app.extensions["peer_redis"] = StrictRedis.from_url(
                current_app.config["REDIS_URL"], max_connections=MAX_CONNECTIONS,
                driver_info=DriverInfo())
        return client


sse = PooledServerSentEvents("sse", __name__)
sse.add_url_rule(rule="", endpoint="stream", view_func=sse.stream)


def start_publishers(app: Flask, channels: int, ticks: int, interval: float,
                     kind: str) -> list[threading.Thread]:
    """One publisher thread per channel, their phases spread evenly over the interval, as
    independent tasks' would be; each sleeps ``interval`` after each publish (see
    bench/notes.md on why the peer keeps that drift)."""
    event_ids = itertools.count(1)

    def publisher(channel: int, offset: float) -> None:
        time.sleep(offset)
        with app.app_context():
            for n in range(1, ticks + 1):
                time.sleep(interval)
                created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                event_id = next(event_ids)
                sse.publish({"id": event_id, "task_id": channel, "kind": kind,
                             "created_at": created_at, "data": {"n": n}},
                            type=kind, id=event_id, channel=f"task-{channel}")

    threads = [threading.Thread(target=publisher, daemon=True,
                                args=(channel, interval * (channel - 1) / channels))
               for channel in range(1, channels + 1)]
    for thread in threads:
        thread.start()
    return threads


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["REDIS_URL"] = os.environ["PEER_REDIS_URL"]
    app.register_blueprint(sse, url_prefix="/stream")

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/publish")
    def publish():
        spec = request.get_json()
        channels = min(int(spec["channels"]), MAX_CHANNELS)
        ticks = min(int(spec["ticks"]), MAX_TICKS)
        interval, kind = float(spec["interval"]), str(spec.get("kind", "tick"))
        start_publishers(app, channels, ticks, interval, kind)
        return jsonify({"channels": channels}), 202

    return app


app = create_app()
