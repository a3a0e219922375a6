"""The stream pollers' pace, without a database: one poll per interval, however slow."""

import threading
import time

from app.store.supabase_pollers import PollerHub


def test_a_slow_poll_does_not_stretch_the_interval():
    calls = []

    def fetch(task_id, after_id, limit):
        calls.append(time.monotonic())
        time.sleep(0.1)  # as slow as the interval itself
        return []

    hub = PollerHub(fetch, interval=0.1, linger=5)
    try:
        waiter = threading.Thread(target=hub.wait, args=(1, 0, 1.0, 100))
        waiter.start()
        waiter.join(10)
    finally:
        hub.close()
    # Waiting a whole interval after each 0.1 s poll would make about 5 polls in that second.
    assert len(calls) >= 8, calls
