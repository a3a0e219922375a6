"""The dev runner (``DEV_LOCAL_LLM=1``): ``tick`` events, then ``done``, the same every run.

Four ticks by default, as the operations notes promise; ``OPS_DEV_TICKS`` changes the count
(longer tasks for benchmarks and demos).
"""

from __future__ import annotations

TICKS = 4


class DevRunner:
    """Stands in for real work: emits ``tick`` ``{"n": 1..ticks}`` one interval apart."""

    name = "dev"

    def __init__(self, tick_seconds: float = 0.5, ticks: int = TICKS):
        self.tick_seconds = tick_seconds
        self.ticks = ticks

    def run(self, task, ctx):
        for n in range(1, self.ticks + 1):
            ctx.sleep(self.tick_seconds)
            ctx.emit("tick", {"n": n})
        return {"ticks": self.ticks}
