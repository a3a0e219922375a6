"""A clock that moves only when a test moves it."""

from __future__ import annotations

from datetime import datetime, timezone


class FakeClock:
    """``clock()`` is seconds, for code taking ``time.monotonic`` or ``time.time``;
    ``clock.now()`` the same instant as a UTC datetime, for code taking ``utcnow``;
    ``clock.sleep(s)`` advances at once, for code taking a sleep function."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.seconds = start

    def __call__(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds, timezone.utc)

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a clock does not go back"
        self.seconds += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
