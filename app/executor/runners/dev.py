"""The dev runner (``DEV_LOCAL_LLM=1``): four ``tick`` events, then ``done``, the same every run."""

from __future__ import annotations

TICKS = 4


class DevRunner:
    """Stands in for real work: emits ``tick`` ``{"n": 1..4}`` one interval apart."""

    name = "dev"

    def __init__(self, tick_seconds: float = 0.5):
        self.tick_seconds = tick_seconds

    def run(self, task, ctx):
        for n in range(1, TICKS + 1):
            ctx.sleep(self.tick_seconds)
            ctx.emit("tick", {"n": n})
        return {"ticks": TICKS}
