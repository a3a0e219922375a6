"""The stream pollers' pace, without a database: one poll per interval, however slow, and
sooner when this process wrote, but not more often than the nudged gap."""

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


def test_a_nudge_polls_at_once_and_bursts_of_nudges_are_spaced():
    calls = []
    first_poll = threading.Event()

    def fetch(task_id, after_id, limit):
        calls.append(time.monotonic())
        first_poll.set()
        return []

    hub = PollerHub(fetch, interval=5.0, linger=30)  # nudged gap: 1 s
    try:
        waiter = threading.Thread(target=hub.wait, args=(1, 0, 3.0, 100))
        waiter.start()
        assert first_poll.wait(5)
        nudged_at = time.monotonic()
        while time.monotonic() - nudged_at < 1.5:  # a burst of writes for 1.5 s
            hub.nudge(1)
            time.sleep(0.01)
        waiter.join(10)
    finally:
        hub.close()
    # The first poll, then one at the end of the 1 s gap, then one more a gap later at
    # most; without nudges there would be no second poll within the 5 s interval.
    assert 2 <= len(calls) <= 3, [round(c - calls[0], 2) for c in calls]
    assert calls[1] - calls[0] >= 0.99
