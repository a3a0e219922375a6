"""A child process in its own process group: reading its pipes and stopping the whole group.

The child is started in a new session, so its process group holds it and everything it
starts (unless one of them calls ``setsid`` itself). It runs as the recipe user when one is
given, is killed if the worker dies, and its group is recorded for the master to kill then
(:mod:`app.isolation`, :mod:`app.group_records`). Pipes are raw non-blocking descriptors
watched with ``selectors.DefaultSelector``: gevent's patched selector when gunicorn's gevent
worker runs us, so waiting for output yields to the event loop; the kernel's otherwise.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from ...group_records import GroupRecords
from ...isolation import RecipeUser, die_with_parent
from .output import STREAMS, OutputLog

POLL_SECONDS = 0.05  # how often a waiting loop looks at the stop signal and the clock
# One read's worth of lines is handled without a pause; under gevent a continuous flood
# would otherwise hold the event loop, so a read is small and a pause follows each one.
READ_BYTES = 4 * 1024


class Child:
    """A running command, its group and its stdout/stderr pipes."""

    def __init__(self, argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str],
                 user: RecipeUser | None = None, records: GroupRecords | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._records = records
        ends = [os.pipe() for _ in STREAMS]
        try:
            self.process = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=ends[0][1], stderr=ends[1][1], start_new_session=True, close_fds=True,
                preexec_fn=partial(die_with_parent, os.getpid()),
                **(user.popen_args() if user else {}))
        except BaseException:
            for fds in ends:
                os.close(fds[0])
                os.close(fds[1])
            raise
        for _, write_end in ends:
            os.close(write_end)  # the child holds them now; EOF comes when it lets go
        self.pgid = self.process.pid  # start_new_session: the group is named after the child
        self._selector = selectors.DefaultSelector()
        for stream, (read_end, _) in zip(STREAMS, ends):
            os.set_blocking(read_end, False)
            self._selector.register(read_end, selectors.EVENT_READ, stream)
        if records is not None:
            try:
                records.add(self.pgid)
            except OSError:  # a group the master could not find must not run at all
                self.signal_group(signal.SIGKILL)
                self.process.wait()
                self.close()
                raise

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()

    @property
    def pipes_open(self) -> bool:
        return bool(self._selector.get_map())

    def group_alive(self) -> bool:
        """True while a process of the group (other than a zombie) exists."""
        return group_alive(self.pgid)

    def pump(self, output: OutputLog, until: Callable[[], bool], timeout: float | None = None,
             wake: threading.Event | None = None) -> bool:
        """Pass output on until ``until()`` is true (True) or ``timeout`` passes (False).

        ``wake`` (the task's stop signal) ends a wait early when nothing is left to read."""
        deadline = None if timeout is None else self._clock() + timeout
        while not until():
            if deadline is not None and self._clock() >= deadline:
                return False
            self._read(output, wake)
        return True

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass  # the group is gone already

    def close(self) -> None:
        """Stop reading: close the pipes that are still open; the group is no longer ours."""
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fd)
            os.close(key.fd)
        self._selector.close()
        if self._records is not None:
            self._records.discard(self.pgid)

    def _read(self, output: OutputLog, wake: threading.Event | None) -> None:
        if not self.pipes_open:
            # Nothing to watch: wait a moment (or until stopped) before looking again.
            if wake is not None:
                wake.wait(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
            return
        for key, _ in self._selector.select(min(POLL_SECONDS, output.due_in())):
            try:
                data = os.read(key.fd, READ_BYTES)
            except BlockingIOError:
                continue
            if data:
                output.feed(key.data, data)
            else:
                self._drop(key, output)
        output.tick()  # a batch whose time is up goes out even when nothing more comes
        time.sleep(0)  # gevent: let other greenlets run (a plain thread just yields the GIL)

    def _drop(self, key: selectors.SelectorKey, output: OutputLog) -> None:
        """End of a stream: stop watching it and let the output log send its last line."""
        self._selector.unregister(key.fd)
        os.close(key.fd)
        output.close(key.data)


def stop_group(child: Child, output: OutputLog, grace: float) -> str:
    """SIGTERM the group, SIGKILL what is left after ``grace``; name the signal that ended it."""
    def gone() -> bool:
        return child.exit_code is not None and not child.group_alive()

    child.signal_group(signal.SIGTERM)
    if child.pump(output, gone, grace):
        return "SIGTERM"
    child.signal_group(signal.SIGKILL)
    # SIGKILL cannot be caught; the wait is bounded only against processes stuck in the kernel.
    child.pump(output, gone, grace)
    return "SIGKILL"


def group_alive(pgid: int) -> bool:
    """Whether the process group has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill() also reaches zombies, which wait for a reaper that may be slow (or absent in
    # a container); they run nothing and hold no pipe, so /proc is asked to tell them apart.
    return _live_member_in_proc(pgid)


def _live_member_in_proc(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: trust kill()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(b")")[2].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False
