"""The text of a model's answer, batched into ``text`` events.

A batch goes out once ``batch_seconds`` have passed since the previous one or it holds
``batch_chars`` characters, so a long answer is a few dozen events instead of one per token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Answer:
    """The answer so far, and the batching of its text into ``text`` events."""

    def __init__(self, emit: Callable[[str, dict], Any], batch_seconds: float, batch_chars: int,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self._seconds = batch_seconds
        self._chars = batch_chars
        self._clock = clock
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._pending_chars = 0
        self._last = clock()  # the first text goes out at once after a slow start
        self.events = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= self._chars or self._clock() - self._last >= self._seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit("text", {"text": "".join(self._pending)})
            self.events += 1
            self._pending.clear()
            self._pending_chars = 0
            self._last = self._clock()
