"""The peer's publishers in a process of their own, the other way Flask-SSE is deployed: the
tasks run elsewhere (a job queue's workers, say) and publish to Redis, which fans each event
out to the web worker's subscriptions; the worker only forwards.

``python -m bench.peer.publisher CHANNELS TICKS INTERVAL [KIND]`` (``PEER_REDIS_URL`` in the
environment) publishes on the same schedule as the worker's publishers (``POST /publish``):
the same app object and ``sse.publish``, in plain threads, no gevent. It prints ``ready``
once its Redis client answers, and exits when the last publisher is done.
"""

from __future__ import annotations

import sys

from .app import app, sse, start_publishers


def main() -> None:
    channels, ticks, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    kind = sys.argv[4] if len(sys.argv) > 4 else "tick"
    with app.app_context():
        sse.redis.ping()
    print("ready", flush=True)
    for thread in start_publishers(app, channels, ticks, interval, kind):
        thread.join()


if __name__ == "__main__":
    main()
