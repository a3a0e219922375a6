"""A child's output as batched ``log`` events: every line kept, up to a per-task byte cap.

Each stream's bytes are split at ``\\n``. Lines are numbered task-wide from 1 (both streams
together, in order of arrival) and grouped into ``log`` events
``{"stream": "stdout"|"stderr", "first_line": N, "lines": [...]}``: a batch goes out once its
oldest line has waited ``batch_seconds``, or it holds ``batch_bytes`` or ``batch_lines``. A
change of stream starts a new event of the same batch; a batch is written in one store call
(one request on Supabase).

Nothing is dropped for coming fast: the store's pace is the reader's, and the child's pipe
holds what waits. Past the cap, the first ``head_bytes`` of stored text are kept, then the
last ``tail_bytes``: lines past the head are held in memory (a window bounded by
``tail_bytes``; a ``log_held`` event says so) and written when the output ends, after one
``log_cut`` event saying how many lines and bytes were left out between head and tail. A line
longer than ``max_line_bytes`` is kept cut, with a visible marker at its end and its index in
the event's ``"cut"`` list.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

STREAMS = ("stdout", "stderr")
HEAD_SHARE = 0.75  # of the cap; the tail window gets the rest

Emit = Callable[[list[tuple[str, dict[str, Any]]]], Any]


@dataclasses.dataclass(frozen=True)
class LogLimits:
    """How a task's output is cut and batched (``OPS_RECIPE_MAX_LINE_BYTES``,
    ``OPS_LOG_MAX_BYTES``)."""

    max_line_bytes: int
    max_bytes: int
    batch_seconds: float = 0.1
    batch_bytes: int = 64 * 1024
    batch_lines: int = 1000

    @property
    def head_bytes(self) -> int:
        return int(self.max_bytes * HEAD_SHARE)

    @property
    def tail_bytes(self) -> int:
        return self.max_bytes - self.head_bytes


def cut_marker(left_out: int) -> str:
    """What ends a line cut at the line limit: how many of its bytes were left out."""
    return f" … [cut: {left_out:,} bytes]"


@dataclasses.dataclass(slots=True)
class _Line:
    number: int
    stream: str
    text: str
    cut: bool
    size: int  # stored bytes it counts against the cap
    raw: int  # bytes the child wrote for it, newline included


class OutputLog:
    """Feeds raw output in; emits ``log`` (and ``log_held``, ``log_cut``) events in batches."""

    def __init__(self, emit: Emit, limits: LogLimits,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self.limits = limits
        self._clock = clock
        self._partial = {stream: bytearray() for stream in STREAMS}
        self._overflow = dict.fromkeys(STREAMS, 0)  # bytes past the line limit, not kept
        self.fed = 0  # bytes taken in, lines finished or not
        self.lines = 0
        self.bytes = 0
        self.lines_cut = 0
        self.lines_left_out = 0
        self.bytes_left_out = 0
        self._head_used = 0
        self._batch: list[_Line] = []
        self._batch_size = 0
        self._batch_since = 0.0
        self._holding = False  # the head is full: lines go to the tail window
        self._tail: collections.deque[_Line] = collections.deque()
        self._tail_size = 0
        self._ended = False

    def feed(self, stream: str, data: bytes) -> None:
        """Take a chunk of ``stream``'s output; batch the lines it completes."""
        self.fed += len(data)
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._keep(stream, data, start, end)
            self._end_line(stream, newline=True)
            start = end + 1
        if start < len(data):
            self._keep(stream, data, start, len(data))
        self.tick()

    def _keep(self, stream: str, data: bytes, start: int, end: int) -> None:
        """Add ``data[start:end]`` to the stream's unfinished line, up to the line limit."""
        partial = self._partial[stream]
        room = self.limits.max_line_bytes - len(partial)
        if end - start > room:
            partial += data[start:start + room]
            self._overflow[stream] += end - start - room
        else:
            partial += data[start:end]

    def _end_line(self, stream: str, newline: bool) -> None:
        partial = self._partial[stream]
        self._line(stream, bytes(partial), self._overflow[stream], newline)
        partial.clear()
        self._overflow[stream] = 0

    def close(self, stream: str) -> None:
        """The stream ended: a last line without a newline is still a line."""
        if self._partial[stream] or self._overflow[stream]:
            self._end_line(stream, newline=False)

    def due_in(self) -> float:
        """Seconds until the waiting batch must go out (a long time when none waits)."""
        if not self._batch:
            return 3600.0
        return max(0.0, self._batch_since + self.limits.batch_seconds - self._clock())

    def tick(self) -> None:
        """Send the waiting batch if its oldest line has waited long enough."""
        if self._batch and self.due_in() <= 0:
            self.flush()

    def flush(self) -> None:
        """Send the waiting lines now."""
        if self._batch:
            batch, self._batch, self._batch_size = self._batch, [], 0
            self._emit(_events(batch))

    def summary(self) -> dict[str, int]:
        """End the output (last lines, the tail window) and count it for the terminal event."""
        if not self._ended:
            self._ended = True
            for stream in STREAMS:
                self.close(stream)
            self.flush()
            if self._holding:
                self._write_tail()
        found = {"lines": self.lines, "bytes": self.bytes}
        if self.lines_cut:
            found["lines_cut"] = self.lines_cut
        if self.lines_left_out:
            found.update(lines_left_out=self.lines_left_out, bytes_left_out=self.bytes_left_out)
        return found

    # -- internals ------------------------------------------------------------------------

    def _line(self, stream: str, raw: bytes, overflow: int, newline: bool) -> None:
        self.lines += 1
        written = len(raw) + overflow + newline
        self.bytes += written
        if overflow:
            kept = _whole_characters(raw)
            overflow += len(raw) - len(kept)
            raw = kept
            self.lines_cut += 1
            text = raw.decode("utf-8", "replace") + cut_marker(overflow)
        else:
            text = raw.decode("utf-8", "replace").removesuffix("\r")
        line = _Line(self.lines, stream, text, bool(overflow), len(raw) + 1, written)
        if not self._holding and self._head_used + line.size <= self.limits.head_bytes:
            self._head_used += line.size
            self._add(line)
            return
        if not self._holding:
            self._holding = True
            self.flush()
            self._emit([("log_held", {
                "after_line": line.number - 1, "tail_bytes": self.limits.tail_bytes,
                "message": f"the output passed {self.limits.head_bytes:,} bytes: the lines "
                           "from here on are held, and the last "
                           f"{self.limits.tail_bytes:,} bytes of them are written when the "
                           "command ends"})])
        self._tail.append(line)
        self._tail_size += line.size
        while self._tail_size > self.limits.tail_bytes:
            gone = self._tail.popleft()
            self._tail_size -= gone.size
            self.lines_left_out += 1
            self.bytes_left_out += gone.raw

    def _add(self, line: _Line) -> None:
        if not self._batch:
            self._batch_since = self._clock()
        self._batch.append(line)
        self._batch_size += line.size
        if (len(self._batch) >= self.limits.batch_lines
                or self._batch_size >= self.limits.batch_bytes):
            self.flush()

    def _write_tail(self) -> None:
        events: list[tuple[str, dict[str, Any]]] = []
        if self.lines_left_out:
            first_kept = self._tail[0].number if self._tail else self.lines + 1
            events.append(("log_cut", {
                "after_line": first_kept - 1 - self.lines_left_out,
                "lines_left_out": self.lines_left_out, "bytes_left_out": self.bytes_left_out,
                "message": f"{self.lines_left_out:,} lines ({self.bytes_left_out:,} bytes) "
                           f"were left out here: the task keeps the first "
                           f"{self.limits.head_bytes:,} and the last "
                           f"{self.limits.tail_bytes:,} bytes of its output"}))
        batch: list[_Line] = []
        size = 0
        for line in self._tail:
            batch.append(line)
            size += line.size
            if len(batch) >= self.limits.batch_lines or size >= self.limits.batch_bytes:
                events += _events(batch)
                batch, size = [], 0
        events += _events(batch)
        self._tail.clear()
        self._tail_size = 0
        self._emit(events)


def _events(lines: list[_Line]) -> list[tuple[str, dict[str, Any]]]:
    """``log`` events for consecutive lines: one per run of lines of the same stream."""
    events = []
    current: dict[str, Any] | None = None
    for line in lines:
        if current is None or current["stream"] != line.stream:
            events.append(("log", {"stream": line.stream, "first_line": line.number,
                                   "lines": []}))
            current = events[-1][1]
        if line.cut:
            current.setdefault("cut", []).append(len(current["lines"]))
        current["lines"].append(line.text)
    return events


def _whole_characters(raw: bytes) -> bytes:
    """``raw`` without a UTF-8 sequence that its end splits (up to 3 bytes)."""
    for back in range(1, min(4, len(raw)) + 1):
        byte = raw[-back]
        if byte < 0x80:
            return raw
        if byte >= 0xC0:  # a lead byte: is its sequence whole?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return raw if back >= need else raw[:-back]
    return raw
