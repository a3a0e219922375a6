"""Daemon threads started on first use in each process, never before gunicorn's fork: a
thread started in the master would not exist in its workers. Under gunicorn's gevent worker
they are greenlets (``threading`` is patched)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class PerProcessThreads:
    """``count`` threads running ``target``, started by the first :meth:`start` in each
    process; later calls (and calls once :meth:`stop` was asked) do nothing."""

    def __init__(self, target: Callable[[], None], name: str, count: int = 1):
        self._target = target
        self._name = name
        self._count = count
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def start(self) -> None:
        if self._pid == os.getpid() or self._stopped:
            return
        with self._lock:
            if self._pid == os.getpid() or self._stopped:
                return
            self._pid = os.getpid()
            names = [self._name] if self._count == 1 else \
                [f"{self._name}-{n}" for n in range(self._count)]
            self._threads = [threading.Thread(target=self._target, name=name, daemon=True)
                             for name in names]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> list[threading.Thread]:
        """This process's threads (none before the first start)."""
        return list(self._threads) if self._pid == os.getpid() else []

    def stop(self, timeout: float | None = None) -> None:
        """Start no more; wait up to ``timeout`` for this process's threads (the caller's
        own excepted) once their target has been told to end."""
        self._stopped = True
        if self._pid != os.getpid():
            return
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
