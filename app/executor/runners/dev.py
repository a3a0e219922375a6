"""The dev runner (``DEV_LOCAL_LLM=1``): ``tick`` events, then ``done``, the same every run.

Ticks come ``OPS_DEV_TICK_SECONDS`` apart, ``OPS_DEV_TICKS`` of them: the operations notes'
count unless set (longer tasks for benchmarks and demos).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class DevRunner:
    """Stands in for real work: emits ``tick`` ``{"n": 1..ticks}`` one interval apart."""

    name = "dev"

    def __init__(self, tick_seconds: float, ticks: int,
                 clock: Callable[[], float] = time.monotonic):
        self.tick_seconds = tick_seconds
        self.ticks = ticks
        self._clock = clock

    def run(self, task, ctx):
        # Tick n is due n intervals after the start, however late the previous one woke: a
        # sleep of one interval after each tick drifts, and tasks whose wake-ups a busy loop
        # delayed together stayed together, their events arriving in bursts.
        start = self._clock()
        for n in range(1, self.ticks + 1):
            ctx.sleep(max(0.0, start + n * self.tick_seconds - self._clock()))
            ctx.emit("tick", {"n": n})
        return {"ticks": self.ticks}
