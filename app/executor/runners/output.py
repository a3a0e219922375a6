"""A child's output as ``log`` events: one per line, with long lines cut and floods bounded.

Each stream's bytes are split at ``\\n`` and every line becomes a ``log`` event
``{"stream": "stdout"|"stderr", "line": ...}`` as soon as it is complete. Nothing is dropped
silently: a line longer than the limit is sent cut, with ``"truncated": true`` and a visible
marker; past the rate limit (a token bucket) or the per-task cap, lines are counted and a
``log_skipped`` event says how many; reaching the cap is announced by a ``log_limit`` event.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

STREAMS = ("stdout", "stderr")
BURST_SECONDS = 5  # the bucket holds this many seconds' worth of lines


@dataclasses.dataclass(frozen=True)
class LogLimits:
    """How much output a task may log (``OPS_RECIPE_*`` in app/config.py)."""

    max_line_bytes: int
    lines_per_second: float
    max_lines: int

    @property
    def burst(self) -> float:
        return self.lines_per_second * BURST_SECONDS


class OutputLog:
    """Feeds raw output in; emits ``log``, ``log_skipped`` and ``log_limit`` events."""

    def __init__(self, emit: Callable[[str, dict[str, Any]], Any], limits: LogLimits,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self.limits = limits
        self._clock = clock
        self._partial = {stream: bytearray() for stream in STREAMS}
        self._cutting = dict.fromkeys(STREAMS, False)  # past the limit of an unfinished line
        self._tokens = limits.burst
        self._refilled = clock()
        self.lines = 0
        self.skipped_lines = 0
        self.skipped_bytes = 0
        self._unreported = [0, 0]  # skipped lines and bytes not yet told in an event
        self._capped = False

    def feed(self, stream: str, data: bytes) -> None:
        """Take a chunk of ``stream``'s output; emit the lines it completes."""
        partial = self._partial[stream]
        partial += data
        if b"\n" in data:
            *lines, rest = partial.split(b"\n")
            partial[:] = rest
            for line in lines:
                if self._cutting[stream]:
                    self._cutting[stream] = False  # the tail of a line already sent cut
                else:
                    self._line(stream, line)
        if len(partial) > self.limits.max_line_bytes:
            # Send the start of a very long line now rather than when (if ever) it ends.
            if not self._cutting[stream]:
                self._line(stream, bytes(partial))
                self._cutting[stream] = True
            partial.clear()

    def close(self, stream: str) -> None:
        """The stream ended: a last line without a newline is still a line."""
        partial = self._partial[stream]
        if partial and not self._cutting[stream]:
            self._line(stream, bytes(partial))
        partial.clear()
        self._cutting[stream] = False

    def summary(self) -> dict[str, int]:
        """Report what is still unreported; the counts for the terminal event."""
        for stream in STREAMS:
            self.close(stream)
        self._report_skipped()
        found = {"lines": self.lines}
        if self.skipped_lines:
            found.update(skipped_lines=self.skipped_lines, skipped_bytes=self.skipped_bytes)
        return found

    # -- internals ------------------------------------------------------------------------

    def _line(self, stream: str, raw: bytes) -> None:
        if self.lines >= self.limits.max_lines:
            if not self._capped:
                self._capped = True
                self._report_skipped()
                self._emit("log_limit", {
                    "max_lines": self.limits.max_lines,
                    "message": f"the task reached its limit of {self.limits.max_lines} log "
                               "lines; later output is counted, not recorded"})
            self._skip(raw)
            return
        if not self._take_token():
            self._skip(raw)
            return
        self._report_skipped()
        data: dict[str, Any] = {"stream": stream}
        limit = self.limits.max_line_bytes
        if len(raw) > limit:
            text = raw[:limit].decode("utf-8", "replace")
            data.update(line=f"{text} [… line cut at {limit} bytes]", truncated=True)
        else:
            data["line"] = raw.decode("utf-8", "replace").removesuffix("\r")
        self.lines += 1
        self._emit("log", data)

    def _skip(self, raw: bytes) -> None:
        self.skipped_lines += 1
        self.skipped_bytes += len(raw) + 1
        self._unreported[0] += 1
        self._unreported[1] += len(raw) + 1

    def _report_skipped(self) -> None:
        lines, size = self._unreported
        if not lines:
            return
        self._unreported = [0, 0]
        reason = (f"the task's limit of {self.limits.max_lines} log lines was reached"
                  if self._capped else
                  f"output came faster than {self.limits.lines_per_second:g} lines a second")
        self._emit("log_skipped", {"lines": lines, "bytes": size, "reason": reason})

    def _take_token(self) -> bool:
        now = self._clock()
        self._tokens = min(self.limits.burst,
                           self._tokens + (now - self._refilled) * self.limits.lines_per_second)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
