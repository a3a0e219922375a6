"""The stream pollers' pace, without a database: one poll per interval, however slow, and
sooner when this process wrote, but not more often than the nudged gap."""

import threading
import time

from app.store.supabase.pollers import PollerHub


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

    hub = PollerHub(fetch, interval=2.0, linger=30)  # nudged polls half an interval apart
    try:
        waiter = threading.Thread(target=hub.wait, args=(1, 0, 1.8, 100))
        waiter.start()
        assert first_poll.wait(5)
        nudged_at = time.monotonic()
        while time.monotonic() - nudged_at < 1.5:  # a burst of writes for 1.5 s
            hub.nudge(1)
            time.sleep(0.01)
        waiter.join(10)
    finally:
        hub.close()
    # The first poll, then the nudged one a half interval (1 s) later, not sooner; without
    # nudges the second poll would come at the end of the 2 s interval.
    gaps = [round(b - a, 2) for a, b in zip(calls, calls[1:])]
    assert 2 <= len(calls) <= 3 and 0.99 <= gaps[0] < 1.5, gaps
