"""Ending the model server's connection when the task is asked to stop."""

from __future__ import annotations

import threading

import requests

from ...runner import RunContext

POLL_SECONDS = 0.05


class CloseOnStop:
    """While active, shut the response's socket down as soon as the task is asked to stop.

    A read blocked on the socket then returns at once, in a thread or a greenlet alike."""

    def __init__(self, ctx: RunContext):
        self._stopping = ctx.stopping
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._watch, name="llm-close-on-stop",
                                        daemon=True)

    def __enter__(self) -> CloseOnStop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def attach(self, response: requests.Response) -> None:
        with self._lock:
            self._response = response
        if self._stopping.is_set():
            self._shut(response)

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._stopping.wait(POLL_SECONDS):
                with self._lock:
                    response = self._response
                if response is not None:
                    self._shut(response)
                    return
                # Not connected yet: the runner looks at the stop signal once it is.
                self._done.wait(POLL_SECONDS)

    @staticmethod
    def _shut(response: requests.Response) -> None:
        try:
            response.raw.shutdown()
        except (ValueError, RuntimeError, OSError):
            pass  # already closed or released
