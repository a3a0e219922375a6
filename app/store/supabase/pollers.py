"""Stream polling: one read per poll interval for all the tasks streamed in the process.

A stream waiting for events registers with its task's feed; the process's one loop reads
the events of all the watched tasks together, ``task_id=in.(...)&id=gt.<the least of their
cursors>``, and each feed keeps the rows above its own cursor and wakes its waiters. So the
reads grow neither with the tasks watched nor with the clients watching each one.

Why each task's own cursor and never the highest id read so far: event ids come from one
global sequence, and a task's events commit in order (one writer per task), but another
task's may commit late behind a higher id; a floor taken from other tasks would skip it.
Reading from the least cursor brings back the rows the tasks further ahead already have
(a quiet task's last event, at least), so:

- a round reads newest first (``order=id.desc``): a full page going down to id N serves
  every task whose cursor is at or above N, and the others read on below N (see
  :meth:`PollerHub._read_newest_chunk` for why that skips nothing); one round costs one
  page per ``PAGE`` quiet tasks, however far apart their cursors;
- the tasks that had no event in their last ``QUIET_READS`` reads (quiet) are read apart
  from the others, in a second request: a busy task's events since a quiet one's last
  would otherwise fill the pages (a task writing every few rounds stays with the busy
  ones, so that its events do not wait for the first request's answer);
- a new feed, and one with more than ``PAGES`` pages to catch up, is read in id order from
  its cursor, at once, apart from the others: a page goes on only for the tasks that got
  rows in it, so a busy task cannot hold the others back, nor they it;
- a read names at most ``ID_CHARS`` characters of task ids (about 850 seven-digit ids;
  proxies refuse longer request lines).

So a process sends one or two reads per interval (busy and quiet tasks) for up to about
``PAGE`` quiet tasks, whatever the number of clients. A feed stops being read after its
task's terminal event, and goes away when nobody has waited on it for ``linger`` seconds.

When this process has written an event of a watched task (its runner runs here), the store
nudges the hub: that task is read at once instead of at the next round, with the other
tasks nudged meanwhile, but not sooner than half an interval after its previous read, so at
most two reads a task per interval however fast it writes (a round skips the tasks read
less than that ago). Streams in the writer's own process so see an event one request after
it is stored; other processes see it at their next round.

The loop is a ``threading.Thread``: a greenlet under gunicorn's gevent worker, a thread
without; it starts on the first wait in each process (after gunicorn's fork).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable

from ...background import PerProcessThreads
from ..base import TERMINAL_KINDS, Event, StoreUnavailable

log = logging.getLogger(__name__)

PAGE = 1000  # rows per read, all the read's tasks together
PAGES = 10  # pages of one group per round before the other groups get their turn
ID_CHARS = 6000  # characters of task ids in one read's URL
KEEP = 2000  # events a feed keeps; a waiter further behind reads Supabase itself
QUIET_READS = 10  # reads in a row without events that make a task quiet
NUDGED_GAP = 0.5  # of the interval: the least time between a round and a nudged one

# fetch(task ids, after id, limit, before_id=None, newest_first=False): the tasks' events
# with a greater id (and a smaller one than before_id), in id order or newest first
Fetch = Callable[..., list[Event]]


class TaskFeed:
    """One watched task's events, as read by the hub, served to the process's waiters."""

    def __init__(self, hub: PollerHub, task_id: int, base_id: int):
        self.hub = hub
        self.task_id = task_id
        self.base_id = base_id  # events after it are kept (from the first waiter on)
        self.cursor = base_id
        self.events: list[Event] = []
        self.ids: list[int] = []
        self.ended = False
        self.fresh = False  # its last read brought events
        self.quiet_reads = 0  # reads in a row that brought none
        self.behind = False  # its last read left pages: read again at once
        self.nudged = False  # this process wrote an event of it since its last read
        self.last_read = float("-inf")  # when its last read started
        self.dead = False  # left the hub: waiters go to a new feed
        self.error: StoreUnavailable | None = None
        self.polls = 0
        self.waiters = 0
        self.idle_since = hub.clock()
        self.lock = threading.Lock()
        # Set, then replaced, at each change: every waiter wakes at once (as in the memory
        # store) instead of one by one, each retaking a Condition's lock.
        self.changed = threading.Event()

    def wait(self, after_id: int, timeout: float, limit: int) -> list[Event] | None:
        """Events after ``after_id``, [] at the timeout; None if this feed has left, or no
        longer keeps the events right after ``after_id`` (the hub reads them)."""
        deadline = self.hub.clock() + timeout
        with self.lock:
            if self.dead:
                return None
            self.waiters += 1
            polls_before = self.polls
        try:
            while True:
                with self.lock:
                    if after_id < self.base_id:  # dropped while this waiter waited
                        return None
                    start = bisect.bisect_right(self.ids, after_id)
                    if start < len(self.ids):
                        return self.events[start:start + limit]
                    if self.ended or self.hub.closed.is_set():
                        return []
                    if self.error is not None and self.polls > polls_before:
                        raise StoreUnavailable(str(self.error))
                    changed = self.changed
                remaining = deadline - self.hub.clock()
                if remaining <= 0:
                    return []
                changed.wait(remaining)
        finally:
            with self.lock:
                self.waiters -= 1
                if self.waiters == 0:
                    self.idle_since = self.hub.clock()

    def take(self, rows: list[Event]) -> bool:
        """Keep this task's rows above its cursor (a read's whole answer may be given);
        True when the task has just ended."""
        with self.lock:
            was_ended = self.ended
            self.error = None
            self.polls += 1
            fresh = False
            for event in rows:
                if event.task_id == self.task_id and event.id > self.cursor:
                    self.events.append(event)
                    self.ids.append(event.id)
                    self.cursor = event.id
                    self.ended = self.ended or event.kind in TERMINAL_KINDS
                    fresh = True
            self.fresh = fresh
            self.quiet_reads = 0 if fresh else self.quiet_reads + 1
            if len(self.events) > KEEP:
                dropped = len(self.events) - KEEP // 2
                self.base_id = self.ids[dropped - 1]
                del self.events[:dropped], self.ids[:dropped]
            self.notify()
            return self.ended and not was_ended

    def failed(self, error: StoreUnavailable) -> None:
        with self.lock:
            self.error = error
            self.polls += 1
            self.notify()

    def notify(self) -> None:
        """Wake every waiter (the caller holds the lock)."""
        self.changed.set()
        self.changed = threading.Event()


class PollerHub:
    """The process's watched tasks and the one loop that reads their events."""

    def __init__(self, fetch: Fetch, interval: float, linger: float,
                 on_ended: Callable[[int], None] = lambda task_id: None,
                 clock: Callable[[], float] = time.monotonic):
        self.fetch = fetch
        self.on_ended = on_ended  # told when a feed sees its task's terminal event
        self.interval = interval
        self.linger = linger
        self.clock = clock
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._feeds: dict[int, TaskFeed] = {}
        self._new: list[TaskFeed] = []  # feeds not read yet
        self._wake = threading.Event()
        self._loop = PerProcessThreads(self._run, "ops-poll")

    # -- waiters --------------------------------------------------------------------------

    def wait(self, task_id: int, after_id: int, timeout: float, limit: int) -> list[Event]:
        """Events of the task after ``after_id`` as soon as there are some, else [] at the
        timeout; raise StoreUnavailable when a read made while waiting failed."""
        while True:
            feed = self._feed(task_id, after_id)
            if after_id < feed.base_id:  # behind what the feed keeps: read the gap
                events = self.fetch([task_id], after_id, limit)
                if events:
                    return events
                after_id = feed.base_id  # nothing stored after it (deleted meanwhile)
            events = feed.wait(after_id, timeout, limit)
            if events is not None:
                return events

    def _feed(self, task_id: int, after_id: int) -> TaskFeed:
        with self._lock:
            if self.closed.is_set():
                raise StoreUnavailable("the store is closed")
            feed = self._feeds.get(task_id)
            if feed is None:
                feed = self._feeds[task_id] = TaskFeed(self, task_id, after_id)
                self._new.append(feed)
                self._wake.set()
        self._loop.start()
        return feed

    def __len__(self) -> int:
        with self._lock:
            return len(self._feeds)

    def nudge(self, task_id: int) -> None:
        """This process stored an event of the task: if it is watched, read it soon."""
        with self._lock:
            feed = self._feeds.get(task_id)
        if feed is None or feed.ended:
            return
        feed.nudged = True
        self._wake.set()

    def close(self) -> None:
        self.closed.set()
        self._wake.set()
        with self._lock:
            feeds = list(self._feeds.values())
        for feed in feeds:
            with feed.lock:
                feed.notify()

    @property
    def threads(self) -> list[threading.Thread]:
        """The loop's thread in this process (none before the first wait)."""
        return self._loop.threads

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        gap = self.interval * NUDGED_GAP
        # The first feed is read at once, as new; the first round comes an interval later.
        last_round = self.clock()
        while not self.closed.is_set():
            self._wake.clear()  # before looking: a later set() ends the wait below
            with self._lock:
                new, self._new = self._new, []
                feeds = [f for f in self._feeds.values() if not (f.ended or f.dead)]
                watching = bool(self._feeds)
            if new:  # a new stream: read at once
                self._read([f for f in new if not f.dead])
                continue
            now = self.clock()
            if now - last_round >= self.interval:
                # Counted from the round's start: the time a round takes is latency too.
                last_round = now
                # Not the feeds a nudge had read less than the nudged gap ago (they come
                # again at the next round, or at their next nudge), unless pages were left.
                self._round([f for f in feeds if f.behind or now - f.last_read >= gap])
                self._retire_idle()
                continue
            nudged = [f for f in feeds if f.nudged and not f.behind]
            ready = [f for f in nudged if now - f.last_read >= gap]
            behind = [f for f in feeds if f.behind]
            if ready or behind:
                # Pages left: read on at once. Nudged: this process wrote their events.
                self._read(behind)
                self._read(ready, newest=True)
                continue
            self._retire_idle()
            wake_at = min([last_round + self.interval] + [f.last_read + gap for f in nudged])
            self._wake.wait(wake_at - now if watching else None)
        self._retire_idle(force=True)

    def _round(self, feeds: list[TaskFeed]) -> None:
        """Read the feeds: those with pages left from their cursors, the others newest
        first, the quiet ones apart from the busy ones."""
        self._read([f for f in feeds if f.behind])
        for quiet in (False, True):
            self._read([f for f in feeds if (f.quiet_reads >= QUIET_READS) == quiet
                        and not f.behind], newest=True)

    def _read(self, feeds: list[TaskFeed], newest: bool = False) -> None:
        """Read the feeds' new events, chunk by chunk of ids."""
        for chunk in _chunks(sorted(feeds, key=lambda f: f.task_id)):
            (self._read_newest_chunk if newest else self._read_chunk)(chunk)

    def _started(self, feeds: list[TaskFeed]) -> None:
        started = self.clock()
        for feed in feeds:
            # A nudge from now on is for a write this read may miss.
            feed.nudged, feed.last_read, feed.behind = False, started, False

    def _fetch(self, feeds: list[TaskFeed], after_id: int, **options) -> list[Event] | None:
        """A page of the feeds' events, or None if the read failed (the feeds are told)."""
        try:
            return self.fetch([f.task_id for f in feeds], after_id, PAGE, **options)
        except StoreUnavailable as error:
            for feed in feeds:
                feed.failed(error)
        except Exception:  # keep serving: the next round may work
            if not self.closed.is_set():  # else the store closed its client mid-read
                log.exception("reading the events of %d tasks failed", len(feeds))
        return None

    def _read_newest_chunk(self, feeds: list[TaskFeed]) -> None:
        """Read the feeds' events newest first, a page at a time from the least cursor.

        A full page ending (going down) at id N holds every new event of each feed whose
        cursor is at or above N, as of the read: those feeds take theirs. The others read
        on below N, holding what they got, until their cursor is reached. Going down, an
        event that commits late behind a higher id cannot be skipped: a task's events
        commit in order, so one seen on a page means its earlier ones were visible to the
        pages read after it. The rows already delivered to the feeds further ahead cost
        a page at most per ``PAGE`` quiet tasks (their last events); after ``PAGES`` pages
        the feeds still reading are read from their cursors, at once."""
        self._started(feeds)
        held: dict[int, list[Event]] = {f.task_id: [] for f in feeds}
        reading, below = feeds, None
        for _ in range(PAGES):
            page = self._fetch(reading, min(f.cursor for f in reading), before_id=below,
                               newest_first=True)
            if page is None:
                return
            for event in page:
                held[event.task_id].append(event)
            if len(page) < PAGE:
                served, reading = reading, []
            else:
                below = page[-1].id
                served = [f for f in reading if f.cursor >= below]
                reading = [f for f in reading if f.cursor < below]
            for feed in served:
                if feed.take(held[feed.task_id][::-1]):
                    self.on_ended(feed.task_id)
            if not reading:
                return
        for feed in reading:
            feed.behind = True

    def _read_chunk(self, feeds: list[TaskFeed]) -> None:
        """Read the feeds' events in id order, a page at a time from the least cursor (new
        feeds, and feeds with a backlog).

        After a full page only the feeds that got new rows in it read on: a page ending at
        id N does not say that a task without rows in it has none up to N (one may still
        commit there), so each page starts from the cursors of the tasks it is read for.
        The others wait for the next round. After ``PAGES`` pages, ``behind`` has the
        feeds still reading on read again at once, after the other reads due."""
        self._started(feeds)
        reading = feeds
        for _ in range(PAGES):
            page = self._fetch(reading, min(f.cursor for f in reading))
            if page is None:
                return
            by_task: dict[int, list[Event]] = {}
            for event in page:
                by_task.setdefault(event.task_id, []).append(event)
            for feed in reading:
                if feed.take(by_task.get(feed.task_id, [])):
                    self.on_ended(feed.task_id)
            if len(page) < PAGE:
                return
            reading = [f for f in reading if f.fresh and not f.ended]
            if not reading:
                return
        for feed in reading:
            feed.behind = True

    def _retire_idle(self, force: bool = False) -> None:
        """Remove the feeds nobody waited on for ``linger`` seconds (all of them: ``force``)."""
        now = self.clock()
        with self._lock:
            for task_id, feed in list(self._feeds.items()):
                with feed.lock:
                    if force or (feed.waiters == 0 and now - feed.idle_since >= self.linger):
                        feed.dead = True
                        del self._feeds[task_id]
                        feed.notify()


def _chunks(feeds: list[TaskFeed]) -> list[list[TaskFeed]]:
    """The feeds in groups whose ids fit in one read's URL."""
    chunks: list[list[TaskFeed]] = [[]]
    size = 0
    for feed in feeds:
        length = len(str(feed.task_id)) + 1
        if chunks[-1] and size + length > ID_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(feed)
        size += length
    return chunks if chunks[0] else []
