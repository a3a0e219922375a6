"""The stream pollers' pace, without a database: one poll per interval, however slow, and
sooner when this process wrote, but not more often than the nudged gap.

The hub's clock is the ``clock`` fixture where a test needs time to pass on its word: an
interval of an hour then tells "at once" from "at the end of the interval" whatever the
machine's load."""

import contextlib
import threading
import time

from app.store.supabase.pollers import NUDGED_GAP, PollerHub
from tests.support.processes import wait_until

HOUR = 3600.0


@contextlib.contextmanager
def one_waiter(fetch, clock):
    """A hub polling every HOUR on ``clock`` for one stream that waits (nearly) for ever."""
    hub = PollerHub(fetch, interval=HOUR, linger=100 * HOUR, clock=clock)
    waiter = threading.Thread(target=hub.wait, args=(1, 0, 1000 * HOUR, 100))
    waiter.start()
    try:
        yield hub
    finally:
        hub.close()
        waiter.join(10)


def test_a_slow_poll_does_not_stretch_the_interval(clock):
    calls = []

    def fetch(task_id, after_id, limit):
        clock.advance(HOUR)  # each poll takes a whole interval
        calls.append(clock())
        return []

    with one_waiter(fetch, clock):
        # Counted from each poll's start, the interval is over when the poll returns: the
        # next one starts at once. Waiting an interval after each would take an hour each.
        wait_until(lambda: len(calls) >= 8, timeout=30, message="eight polls back to back")


def test_a_nudge_polls_at_once_once_the_nudged_gap_has_passed(clock):
    calls = []

    def fetch(task_id, after_id, limit):
        calls.append(clock())
        return []

    with one_waiter(fetch, clock) as hub:
        wait_until(lambda: len(calls) == 1, timeout=30, message="the first poll")
        clock.advance(HOUR * NUDGED_GAP)
        hub.nudge(1)
        # Without the nudge the next poll would come an hour later.
        wait_until(lambda: len(calls) == 2, timeout=30, message="the nudged poll")
    assert calls[1] - calls[0] == HOUR * NUDGED_GAP


def test_bursts_of_nudges_are_spaced():
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
        wait_until(lambda: len(calls) >= 2, timeout=30, message="a nudged poll")
        waiter.join(10)
    finally:
        hub.close()
    # However many nudges, polls stay half an interval (1 s) apart or more. A wait never
    # ends early, so a loaded machine can only widen the gaps, not fail this.
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(gap >= 0.99 for gap in gaps), gaps


def test_a_poll_cut_short_by_closing_the_store_logs_nothing(clock, caplog):
    """Closing the store closes its HTTP client, maybe under a poll: that poll's error is
    expected, not a failure to log with a traceback."""
    polling, closed = threading.Event(), threading.Event()

    def fetch(task_id, after_id, limit):
        polling.set()
        closed.wait(10)
        raise RuntimeError("Cannot send a request, as the client has been closed.")

    with one_waiter(fetch, clock) as hub:
        assert polling.wait(10)
        poller = hub._pollers[1]
        hub.close()
        closed.set()
        poller.thread.join(10)
    assert not poller.thread.is_alive()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
