"""The stream pollers, without a database: one read a round for every watched task, each
task's own floor, paging that skips nobody, no starving by a busy task; the pace (one round
per interval however slow, sooner when this process wrote, not more often than the nudged
gap); lingering and ending.

The hub's clock is the ``clock`` fixture where a test needs time to pass on its word: an
interval of an hour then tells "at once" from "at the end of the interval" whatever the
machine's load. A round is due once the clock has moved an interval; ``hub.nudge`` of a
watched task wakes the loop to see it."""

import contextlib
import threading
import time
from datetime import datetime, timezone

from app.store.base import Event, StoreUnavailable
from app.store.supabase import pollers
from app.store.supabase.pollers import NUDGED_GAP, PollerHub
from tests.support.processes import wait_until

HOUR = 3600.0
FOREVER = 1000 * HOUR


def event(task_id, event_id, kind="tick"):
    return Event(id=event_id, task_id=task_id, kind=kind,
                 created_at=datetime.now(timezone.utc), data={})


class Stored:
    """Events visible in the table; ``fetch`` answers as the store's read does."""

    def __init__(self):
        self.rows: list[Event] = []
        self.calls: list[tuple[tuple[int, ...], int]] = []
        self.lock = threading.Lock()

    def add(self, task_id, event_id, kind="tick"):
        with self.lock:
            self.rows.append(event(task_id, event_id, kind))

    def fetch(self, task_ids, after_id, limit, before_id=None, newest_first=False):
        with self.lock:
            self.calls.append((tuple(task_ids), after_id))
            found = sorted((e for e in self.rows if e.task_id in task_ids and e.id > after_id
                            and (before_id is None or e.id < before_id)),
                           key=lambda e: e.id, reverse=newest_first)
        return found[:limit]


class Follower(threading.Thread):
    """Waits on the hub for a task's events until told to stop; keeps what it got."""

    def __init__(self, hub, task_id, after_id=0):
        super().__init__(daemon=True)
        self.hub, self.task_id, self.last = hub, task_id, after_id
        self.got: list[Event] = []
        self.start()

    def run(self):
        while True:
            try:
                events = self.hub.wait(self.task_id, self.last, FOREVER, 100)
            except StoreUnavailable:  # the hub closed
                return
            if not events:  # the task ended, or the hub closed
                return
            self.got.extend(events)
            self.last = events[-1].id

    @property
    def ids(self):
        return [e.id for e in self.got]


@contextlib.contextmanager
def hub_for(fetch, clock, interval=HOUR, linger=100 * HOUR):
    hub = PollerHub(fetch, interval=interval, linger=linger, clock=clock)
    try:
        yield hub
    finally:
        hub.close()
        for thread in hub.threads:
            thread.join(10)


def next_round(hub, clock, task_id):
    """Move the clock one interval and wake the loop (a nudge of a watched task)."""
    clock.advance(hub.interval)
    hub.nudge(task_id)


def read_once(hub, *task_ids):
    """Wait until every feed of ``task_ids`` is in the hub and has been read."""
    wait_until(lambda: polls(hub, task_ids) >= 1, timeout=30,
               message="a first read of every feed")


def polls(hub, task_ids):
    """The least number of reads made of these tasks' feeds (0 for one not there yet)."""
    with hub._lock:
        return min(hub._feeds[t].polls if t in hub._feeds else 0 for t in task_ids)


# -- one read for all ---------------------------------------------------------------------


def test_one_read_a_round_serves_every_watched_task(clock):
    stored = Stored()
    tasks = list(range(1, 51))
    with hub_for(stored.fetch, clock) as hub:
        followers = {t: Follower(hub, t) for t in tasks}
        read_once(hub, *tasks)
        stored.calls.clear()
        stored.add(7, 100)
        stored.add(42, 101)
        next_round(hub, clock, 1)
        wait_until(lambda: followers[7].ids == [100] and followers[42].ids == [101],
                   timeout=30, message="the round's events")
        wait_until(lambda: polls(hub, tasks) == 2, timeout=30)
        # One read for the fifty tasks (they were all quiet: one group).
        assert stored.calls == [(tuple(tasks), 0)]
        assert all(not f.got for t, f in followers.items() if t not in (7, 42))


def test_the_ids_of_a_read_fit_in_a_url(clock, monkeypatch):
    monkeypatch.setattr(pollers, "ID_CHARS", 30)  # ten two-digit ids and their commas
    stored = Stored()
    tasks = list(range(10, 35))
    with hub_for(stored.fetch, clock) as hub:
        for task_id in tasks:
            Follower(hub, task_id)
        read_once(hub, *tasks)
        stored.calls.clear()
        next_round(hub, clock, 10)
        wait_until(lambda: polls(hub, tasks) == 2, timeout=30)
    assert [len(ids) for ids, _ in stored.calls] == [10, 10, 5]
    assert sorted(t for ids, _ in stored.calls for t in ids) == tasks


def test_each_task_keeps_its_own_floor(clock):
    """A task's event committed late behind another task's higher id is still delivered:
    the read starts from the least cursor, not from the highest id seen."""
    stored = Stored()
    with hub_for(stored.fetch, clock) as hub:
        first, second = Follower(hub, 1), Follower(hub, 2)
        read_once(hub, 1, 2)
        stored.add(2, 5)
        stored.add(2, 6)
        next_round(hub, clock, 1)
        wait_until(lambda: second.ids == [5, 6], timeout=30)
        stored.add(1, 4)  # took its id before 5 and 6, committed after them
        next_round(hub, clock, 1)
        wait_until(lambda: first.ids == [4], timeout=30, message="the late event")
        assert second.ids == [5, 6]  # not delivered twice
        assert stored.calls[-1][1] <= 3


def test_pages_skip_no_task_events(clock, monkeypatch):
    monkeypatch.setattr(pollers, "PAGE", 3)
    monkeypatch.setattr(pollers, "PAGES", 2)  # then the next round, at once
    stored = Stored()
    for event_id in range(1, 61):  # three tasks' events interleaved
        stored.add(1 + event_id % 3, event_id)
    with hub_for(stored.fetch, clock) as hub:
        followers = [Follower(hub, t) for t in (1, 2, 3)]
        expected = [[i for i in range(1, 61) if 1 + i % 3 == t] for t in (1, 2, 3)]

        def caught_up():
            if [f.ids for f in followers] == expected:
                return True
            next_round(hub, clock, 1)  # a feed left out of a page reads at the next round
            return False

        wait_until(caught_up, timeout=30, message=lambda: [f.ids for f in followers])


def test_a_page_does_not_skip_an_event_committed_during_the_read(clock, monkeypatch):
    """Task 2's events 3 and 10 commit between the first page (ids up to 5, all task 1's)
    and the next: that next page must not start above 3 for task 2."""
    monkeypatch.setattr(pollers, "PAGE", 4)
    stored = Stored()
    for event_id in (1, 2, 4, 5, 6, 7, 8, 9):
        stored.add(1, event_id)
    fetch = stored.fetch

    def committing(task_ids, after_id, limit, **options):
        rows = fetch(task_ids, after_id, limit, **options)
        if len(stored.calls) == 1:
            stored.add(2, 3)
            stored.add(2, 10)
        return rows

    with hub_for(committing, clock) as hub:
        start = hub._loop.start
        monkeypatch.setattr(hub._loop, "start", lambda: None)
        hub._feed(1, 0), hub._feed(2, 0)  # both feeds in the loop's first read
        monkeypatch.setattr(hub._loop, "start", start)
        first, second = Follower(hub, 1), Follower(hub, 2)
        wait_until(lambda: first.ids == [1, 2, 4, 5, 6, 7, 8, 9], timeout=30)
        next_round(hub, clock, 1)
        wait_until(lambda: second.ids == [3, 10], timeout=30, message=lambda: second.ids)


def test_many_quiet_tasks_far_apart_are_read_in_one_round(clock, monkeypatch):
    """Thirty tasks whose last events are spread over ids 1 to 30: a read from the least
    cursor holds each one's last event again, far more than a page. Newest first, one round
    still delivers the new events of the tasks at both ends."""
    monkeypatch.setattr(pollers, "PAGE", 4)
    stored = Stored()
    tasks = list(range(1, 31))
    for task_id in tasks:
        stored.add(task_id, task_id)
    with hub_for(stored.fetch, clock) as hub:
        followers = {t: Follower(hub, t) for t in tasks}
        wait_until(lambda: all(f.ids == [t] for t, f in followers.items()), timeout=30)
        wait_until(lambda: polls(hub, tasks) >= 1, timeout=30)
        stored.add(1, 100)
        stored.add(30, 101)
        before = polls(hub, tasks)
        next_round(hub, clock, 1)
        wait_until(lambda: followers[1].ids == [1, 100] and followers[30].ids == [30, 101],
                   timeout=30, message=lambda: (followers[1].ids, followers[30].ids))
        assert polls(hub, tasks) == before + 1  # in that one round


def test_a_busy_task_starves_no_other(clock, monkeypatch):
    """Task 1 writes faster than it is read (every read finds full pages of it, and leaves
    some: it is read again at once, from its cursor); task 2's one event, committed late with
    a low id, is read at the next round all the same, and task 1 is not held back by task 2's
    old cursor either (its reads would otherwise start there every time)."""
    monkeypatch.setattr(pollers, "PAGE", 4)
    monkeypatch.setattr(pollers, "PAGES", 2)
    late = threading.Event()
    head = [20]  # task 1's last even id, ten more at each read

    def fetch(task_ids, after_id, limit, before_id=None, newest_first=False):
        head[0] += 10
        top = head[0] if before_id is None else min(head[0], before_id - 1)
        rows = [event(2, 7)] if 2 in task_ids and late.is_set() and after_id < 7 < top else []
        if 1 in task_ids:
            rows += [event(1, n) for n in range(after_id + 1, top + 1) if n % 2 == 0]
        return sorted(rows, key=lambda e: e.id, reverse=newest_first)[:limit]

    with hub_for(fetch, clock) as hub:
        busy, other = Follower(hub, 1), Follower(hub, 2)
        wait_until(lambda: len(busy.got) > 100, timeout=30, message="the busy task's events")
        late.set()
        next_round(hub, clock, 2)  # the busy task's pages never wait; the others' round
        wait_until(lambda: other.ids == [7], timeout=30, message="the other task's event")
        hub.close()
        busy.join(10)
    assert busy.ids == list(range(2, 2 * len(busy.got) + 1, 2))  # in order, none skipped


# -- pace -----------------------------------------------------------------------------------


def test_a_slow_round_does_not_stretch_the_interval(clock):
    calls = []

    def fetch(task_ids, after_id, limit, **options):
        clock.advance(HOUR)  # each read takes a whole interval
        calls.append(clock())
        return []

    with hub_for(fetch, clock) as hub:
        Follower(hub, 1)
        # Counted from each round's start, the interval is over when the read returns: the
        # next one starts at once. Waiting an interval after each would take an hour each.
        wait_until(lambda: len(calls) >= 8, timeout=30, message="eight reads back to back")


def test_a_nudge_reads_at_once_once_the_nudged_gap_has_passed(clock):
    stored = Stored()
    with hub_for(stored.fetch, clock) as hub:
        Follower(hub, 1)
        wait_until(lambda: len(stored.calls) == 1, timeout=30, message="the first read")
        clock.advance(HOUR * NUDGED_GAP)
        hub.nudge(1)
        # Without the nudge the next read would come an hour later.
        wait_until(lambda: len(stored.calls) == 2, timeout=30, message="the nudged read")
    assert stored.calls[1] == ((1,), 0)


def test_bursts_of_nudges_are_spaced():
    calls = []
    first_read = threading.Event()

    def fetch(task_ids, after_id, limit, **options):
        calls.append(time.monotonic())
        first_read.set()
        return []

    hub = PollerHub(fetch, interval=2.0, linger=30)  # nudged rounds half an interval apart
    try:
        waiter = threading.Thread(target=hub.wait, args=(1, 0, 1.8, 100))
        waiter.start()
        assert first_read.wait(5)
        nudged_at = time.monotonic()
        while time.monotonic() - nudged_at < 1.5:  # a burst of writes for 1.5 s
            hub.nudge(1)
            time.sleep(0.01)
        wait_until(lambda: len(calls) >= 2, timeout=30, message="a nudged read")
        waiter.join(10)
    finally:
        hub.close()
    # However many nudges, reads stay half an interval (1 s) apart or more. A wait never
    # ends early, so a loaded machine can only widen the gaps, not fail this.
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(gap >= 0.99 for gap in gaps), gaps


# -- ending and lingering -------------------------------------------------------------------


def test_an_ended_task_is_read_no_more(clock):
    stored = Stored()
    ended = []
    hub = PollerHub(stored.fetch, interval=HOUR, linger=100 * HOUR, clock=clock,
                    on_ended=ended.append)
    try:
        first, second = Follower(hub, 1), Follower(hub, 2)
        read_once(hub, 1, 2)
        stored.add(1, 3, "done")
        next_round(hub, clock, 2)
        wait_until(lambda: first.ids == [3], timeout=30)
        assert ended == [1]
        stored.calls.clear()
        next_round(hub, clock, 2)
        wait_until(lambda: stored.calls, timeout=30)
        assert stored.calls == [((2,), 0)]
        # A stream asking again gets the end from memory, at once.
        assert [e.kind for e in hub.wait(1, 0, FOREVER, 100)] == ["done"]
    finally:
        hub.close()
    assert not second.got


def test_a_feed_nobody_waits_on_goes_away_after_the_linger(clock):
    stored = Stored()
    with hub_for(stored.fetch, clock, linger=2 * HOUR) as hub:
        stored.add(1, 1)
        assert [e.id for e in hub.wait(1, 0, FOREVER, 100)] == [1]  # then nobody waits
        Follower(hub, 2)
        read_once(hub, 2)
        next_round(hub, clock, 2)
        wait_until(lambda: polls(hub, [2]) == 2, timeout=30)
        assert len(hub) == 2  # an hour idle: it stays
        next_round(hub, clock, 2)
        wait_until(lambda: len(hub) == 1, timeout=30, message="the idle feed gone")
        stored.calls.clear()
        next_round(hub, clock, 2)
        wait_until(lambda: stored.calls, timeout=30)
        assert stored.calls[0][0] == (2,)


def test_closing_wakes_the_waiters_and_stops_the_loop(clock, caplog):
    """Closing the store closes its HTTP client, maybe under a read: that read's error is
    expected, not a failure to log with a traceback."""
    reading, closed = threading.Event(), threading.Event()

    def fetch(task_ids, after_id, limit, **options):
        reading.set()
        closed.wait(10)
        raise RuntimeError("Cannot send a request, as the client has been closed.")

    hub = PollerHub(fetch, interval=HOUR, linger=HOUR, clock=clock)
    waiter = Follower(hub, 1)
    assert reading.wait(10)
    loop = hub.threads
    hub.close()
    closed.set()
    for thread in [*loop, waiter]:
        thread.join(10)
        assert not thread.is_alive()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
