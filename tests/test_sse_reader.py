"""The SSE reader (app/stream/reader.py) and the LLM runner's reading of a raw answer with it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.executor.runner import TaskFailed
from app.executor.runners.llm import wire
from app.store import Event
from app.stream import format_event
from app.stream.reader import Message, read_messages


def read(text: bytes) -> list[Message]:
    return list(read_messages(text.splitlines(keepends=True)))


def test_fields_of_a_message():
    assert read(b"id: 7\nevent: tick\ndata: {}\nretry: 3000\n\n") == [
        Message(data="{}", event="tick", id="7", retry=3000)]


def test_data_lines_are_joined_and_one_leading_space_is_dropped():
    assert read(b"data: a\ndata:b\ndata:  c\ndata:\n\n") == [Message(data="a\nb\n c\n")]


def test_comments_unknown_fields_and_empty_blocks_are_skipped():
    assert read(b": ping\n\n\nfoo: bar\n\ndata: x\n: in between\n\n") == [Message(data="x")]


def test_a_message_without_data_is_still_a_message():
    assert read(b"retry: 5000\n\nevent: x\n\n") == [Message(retry=5000), Message(event="x")]


def test_a_retry_that_is_not_all_ascii_digits_is_ignored():
    assert read("retry: 1.5\n\nretry: ²\n\nretry:\n\n".encode()) == []


def test_line_endings_and_a_line_without_colon():
    assert read(b"data: a\r\ndata\r\n\r\n") == [Message(data="a\n")]
    assert list(read_messages([b"data: a", b""])) == [Message(data="a")]


def test_lines_after_the_last_blank_line_are_not_a_message():
    assert read(b"data: a\n\ndata: b\n") == [Message(data="a")]


def test_data_that_is_not_utf8_is_replaced_or_raises():
    assert read(b"data: \xff\n\n") == [Message(data="\ufffd")]
    with pytest.raises(UnicodeDecodeError):
        list(read_messages([b"data: \xff", b""], errors="strict"))
    # Comments are never decoded, and other fields always with replacement.
    assert list(read_messages([b": \xff", b"id: \xff", b"data: x", b""], errors="strict")) == [
        Message(data="x", id="\ufffd")]


def test_reads_what_the_server_writes():
    event = Event(id=7, task_id=3, kind="tick", data={"n": 1, "note": "é\nz"},
                  created_at=datetime(2026, 11, 28, tzinfo=timezone.utc))
    [message] = read(format_event(event).encode())
    assert (message.id, message.event) == ("7", "tick")
    assert '"note":"\\u00e9\\nz"' in message.data


# -- the LLM runner's reading of the raw answer --------------------------------------------------

class Raw:
    """A urllib3 response's ``read1`` over fixed blocks."""

    def __init__(self, *blocks: bytes):
        self._blocks = list(blocks)

    def read1(self, amount: int, decode_content: bool = False) -> bytes:
        assert decode_content
        if not self._blocks:
            return b""
        block = self._blocks.pop(0)
        if len(block) > amount:
            self._blocks.insert(0, block[amount:])
        return block[:amount]


def test_payloads_across_blocks_with_the_last_message_unterminated():
    raw = Raw(b": hello\r\nevent: x\r\n\r\nda", b"ta: 1\n\ndata: 2\ndata: 3\n", b"data: [DONE]")
    assert list(wire.payloads(raw)) == ["1", "2\n3"]  # an unfinished line is dropped


def test_payloads_fail_on_data_that_is_not_utf8():
    with pytest.raises(TaskFailed, match="not UTF-8"):
        list(wire.payloads(Raw(b"data: 1\n\ndata: \xff\n\n")))


def test_payloads_fail_on_a_line_over_the_limit():
    raw = Raw(b"data: 1\n\n", b"data: " + b"x" * wire.MAX_LINE_BYTES)
    payloads = wire.payloads(raw)
    assert next(payloads) == "1"
    with pytest.raises(TaskFailed, match=f"a line over {wire.MAX_LINE_BYTES} bytes"):
        next(payloads)


def test_a_line_at_the_limit_is_read():
    line = b"data: " + b"x" * (wire.MAX_LINE_BYTES - 6)
    assert list(wire.payloads(Raw(line, b"\n\n"))) == ["x" * (wire.MAX_LINE_BYTES - 6)]
