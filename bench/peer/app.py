"""The peer app: Flask-SSE's blueprint at ``/stream?channel=...``, used as its docs show, and
publishers that stand in for running tasks.

``POST /publish {"channels", "ticks", "interval", "kind"}`` starts one publisher per channel
(``task-1`` ... ``task-N``) in this worker, as our dev runner runs in ours: each sleeps
``interval``, then ``sse.publish``-es an event shaped like ours (id, task_id, kind,
created_at, data), ``ticks`` times.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import datetime, timezone

from flask import Flask, jsonify, request
from flask_sse import sse

MAX_CHANNELS = 100_000
MAX_TICKS = 100_000


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["REDIS_URL"] = os.environ["PEER_REDIS_URL"]
    app.register_blueprint(sse, url_prefix="/stream")
    event_ids = itertools.count(1)

    def publisher(channel: int, ticks: int, interval: float, kind: str) -> None:
        with app.app_context():
            for n in range(1, ticks + 1):
                time.sleep(interval)
                created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                event_id = next(event_ids)
                sse.publish({"id": event_id, "task_id": channel, "kind": kind,
                             "created_at": created_at, "data": {"n": n}},
                            type=kind, id=event_id, channel=f"task-{channel}")

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.post("/publish")
    def publish():
        spec = request.get_json()
        channels = min(int(spec["channels"]), MAX_CHANNELS)
        ticks = min(int(spec["ticks"]), MAX_TICKS)
        interval, kind = float(spec["interval"]), str(spec.get("kind", "tick"))
        for channel in range(1, channels + 1):
            threading.Thread(target=publisher, args=(channel, ticks, interval, kind),
                             daemon=True).start()
        return jsonify({"channels": channels}), 202

    return app


app = create_app()
