"""The OpenAI streaming wire format: a chat-completions answer read from its socket.

The answer is a ``text/event-stream`` whose ``data`` are JSON chunks, ending with
``data: [DONE]``. Here the response's bytes become lines (read as they arrive, within
:data:`MAX_LINE_BYTES`), the lines become messages (:mod:`app.stream.reader`), and each chunk
becomes its text deltas and finish reasons. Anything that does not fit raises
:class:`TaskFailed` with a reason that says what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ....stream.reader import read_messages
from ...runner import TaskFailed

READ_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # one SSE line; a server sending more is broken
MAX_DETAIL = 300
DONE = "[DONE]"


def payloads(raw) -> Iterator[str]:
    """The ``data`` of each message read from ``raw`` (a urllib3 response), as it arrives."""
    try:
        for message in read_messages(_lines(raw), errors="strict"):
            if message.data is not None:
                yield message.data
    except UnicodeDecodeError:
        raise TaskFailed("malformed chunk from the model server: not UTF-8") from None


def _lines(raw) -> Iterator[bytes]:
    """Each complete line of ``raw``; the end of the stream also ends its last message."""
    buffer = bytearray()
    while True:
        # read1 returns what has arrived, so each chunk is passed on without waiting for more.
        block = raw.read1(READ_BYTES, decode_content=True)
        if not block:
            break
        buffer += block
        *lines, rest = buffer.split(b"\n")
        buffer[:] = rest
        if len(buffer) > MAX_LINE_BYTES:
            raise TaskFailed("malformed stream from the model server: a line over "
                             f"{MAX_LINE_BYTES} bytes")
        yield from lines
    # Some servers close the stream without the blank line after the last message; an
    # unfinished line, though, is dropped.
    yield b""


def parse_chunk(payload: str) -> dict:
    """The JSON chunk in ``payload``; TaskFailed when it is not one or is an error object."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise TaskFailed(f"malformed chunk from the model server: {_snippet(payload)}")
    if "error" in chunk:
        raise TaskFailed(f"the model server reported an error: {error_message(chunk)}")
    return chunk


def deltas(chunk: dict, payload: str) -> Iterator[tuple[str, str | None]]:
    """Each choice's new text and finish reason; TaskFailed when the shape is wrong."""
    malformed = TaskFailed(f"malformed chunk from the model server: {_snippet(payload)}")
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise malformed
    for choice in choices:
        if not isinstance(choice, dict):
            raise malformed
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise malformed
        text = delta.get("content") or ""
        finish = choice.get("finish_reason")
        if not isinstance(text, str) or not isinstance(finish, (str, type(None))):
            raise malformed
        yield text, finish


def error_message(body: Any) -> str:
    """The human part of an OpenAI-style error body: ``{"error": {"message": ...}}``."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return " ".join(str(error).split())[:MAX_DETAIL]


def _snippet(text: str) -> str:
    return repr(text[:80]) + ("…" if len(text) > 80 else "")
