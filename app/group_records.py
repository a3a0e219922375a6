"""Which process groups each gunicorn worker's recipes run in, for the master to kill.

A worker stops its recipes' groups itself whenever it can. When it cannot (``kill -9``, the
OOM killer, a crash), its recipes would run on under PID 1: the first process of each dies
with the worker (``PR_SET_PDEATHSIG``), but not what that process started. So each worker
records each group it starts as an empty file ``<worker pid>.<pgid>`` in a directory the
master made (mode 0700), removed once the group is gone; the master's ``child_exit`` hook
kills the groups left behind by a worker that died.

The master kills them as soon as it reaps the worker. While a group has a member the kernel
gives its id to no new process, so a record names another group only if its own ended in the
instant between its end and the worker removing the record.

Outside gunicorn (tests, ``flask run``) nothing is installed and nothing is recorded.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile

_installed: GroupRecords | None = None


class GroupRecords:
    """The record directory: workers add and remove groups, the master kills them."""

    def __init__(self, directory: str):
        self.directory = directory

    @classmethod
    def create(cls) -> GroupRecords:
        """A new private directory (0700), removed when the process that made it exits."""
        records = cls(tempfile.mkdtemp(prefix="ops-recipe-groups-"))
        owner = os.getpid()
        # Forked workers inherit the exit handler; only the master's removes the directory.
        atexit.register(lambda: os.getpid() == owner and records.remove_directory())
        return records

    def _path(self, worker: int, pgid: int) -> str:
        return os.path.join(self.directory, f"{worker}.{pgid}")

    def add(self, pgid: int) -> None:
        """Record a group this process started."""
        with open(self._path(os.getpid(), pgid), "w"):
            pass

    def discard(self, pgid: int) -> None:
        """Forget a group this process started and stopped."""
        try:
            os.remove(self._path(os.getpid(), pgid))
        except FileNotFoundError:
            pass

    def kill_groups_of(self, worker: int) -> list[int]:
        """SIGKILL every group ``worker`` left recorded and forget them; their ids."""
        killed = []
        prefix = f"{worker}."
        for name in os.listdir(self.directory):
            if not name.startswith(prefix):
                continue
            pgid = int(name[len(prefix):])
            try:
                os.killpg(pgid, signal.SIGKILL)
                killed.append(pgid)
            except ProcessLookupError:
                pass  # it ended by itself
            os.remove(os.path.join(self.directory, name))
        return killed

    def remove_directory(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def install(records: GroupRecords | None) -> None:
    """Make ``records`` the ones recipes started by this process (and its forks) use."""
    global _installed
    _installed = records


def installed() -> GroupRecords | None:
    return _installed
