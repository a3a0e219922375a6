"""Output to batched log events: line splitting, numbering, batches, long lines, the head and
tail of a capped output (a fake clock, no process)."""

from __future__ import annotations

import pytest

from app.executor.runners.output import LogLimits, OutputLog
from tests.support.api import make_settings
from tests.support.runners import log_lines


def make(clock, **limits):
    """An OutputLog with the configured limits, but for ``limits``; and the batches it sent."""
    settings = make_settings()
    limits = {"max_line_bytes": settings.recipe_max_line_bytes,
              "max_bytes": settings.log_max_bytes, **limits}
    batches = []
    output = OutputLog(batches.append, LogLimits(**limits), clock)
    return output, batches


def events_of(batches) -> list[dict]:
    return [{"kind": kind, "data": data} for batch in batches for kind, data in batch]


def test_lines_are_split_across_chunks_and_streams_and_numbered_together(clock):
    output, batches = make(clock)
    output.feed("stdout", b"one\ntw")
    output.feed("stderr", b"oops\r\n")
    output.feed("stdout", b"o\n\nthree")
    output.close("stdout")
    assert batches == []  # within the batch time: nothing sent yet
    clock.advance(0.1)
    output.tick()
    assert batches == [[
        ("log", {"stream": "stdout", "first_line": 1, "lines": ["one"]}),
        ("log", {"stream": "stderr", "first_line": 2, "lines": ["oops"]}),
        ("log", {"stream": "stdout", "first_line": 3, "lines": ["two", "", "three"]}),
    ]]
    assert output.summary() == {"lines": 5, "bytes": 20}


def test_a_quiet_line_goes_out_after_the_batch_time(clock):
    output, batches = make(clock)
    output.feed("stdout", b"compiling\n")
    assert output.due_in() == pytest.approx(0.1)
    clock.advance(0.05)
    output.feed("stdout", b"linking\n")  # joins the waiting batch; its time is the first's
    assert output.due_in() == pytest.approx(0.05) and batches == []
    clock.advance(0.051)
    output.tick()
    assert events_of(batches) == [{"kind": "log", "data": {
        "stream": "stdout", "first_line": 1, "lines": ["compiling", "linking"]}}]


def test_a_flood_is_sent_in_batches_of_at_most_1000_lines_or_64_kib(clock):
    output, batches = make(clock)
    output.feed("stdout", b"".join(b"%d\n" % n for n in range(2500)))
    assert [len(d["lines"]) for b in batches for _, d in b] == [1000, 1000]
    output.feed("stdout", b"y" * 99 + b"\n")
    output.summary()
    assert [len(d["lines"]) for b in batches for _, d in b] == [1000, 1000, 501]
    assert log_lines(events_of(batches)) == [str(n) for n in range(2500)] + ["y" * 99]

    output, batches = make(clock)
    output.feed("stdout", b"".join(b"x" * 199 + b"\n" for _ in range(700)))
    sizes = [len(d["lines"]) for b in batches for _, d in b]
    assert sizes == [328, 328]  # 64 KiB of 200-byte lines


def test_invalid_utf8_is_replaced_not_fatal(clock):
    output, batches = make(clock)
    output.feed("stdout", b"caf\xc3\xa9 \xff\n")
    output.flush()
    assert batches == [[("log", {"stream": "stdout", "first_line": 1, "lines": ["café \ufffd"]})]]


def test_a_long_line_is_cut_with_a_marker_and_flagged(clock):
    output, batches = make(clock, max_line_bytes=100)
    output.feed("stdout", b"a" * 60)
    output.feed("stdout", b"b" * 60)
    output.feed("stdout", b"c" * 500 + b"\nnext\n")
    output.feed("stderr", b"x" + b"\xc3\xa9" * 80 + b"\n")  # byte 100 is half an é
    output.flush()
    assert events_of(batches) == [
        {"kind": "log", "data": {"stream": "stdout", "first_line": 1, "cut": [0], "lines": [
            "a" * 60 + "b" * 40 + " … [cut: 520 bytes]", "next"]}},
        {"kind": "log", "data": {"stream": "stderr", "first_line": 3, "cut": [0], "lines": [
            "x" + "é" * 49 + " … [cut: 62 bytes]"]}},
    ]
    assert output.summary() == {"lines": 3, "bytes": 788, "lines_cut": 2}


def test_past_the_cap_the_head_and_the_tail_are_kept_with_one_marker(clock):
    # 1000 bytes: a head of 750 and a tail of 250; each line stores 10 bytes.
    output, batches = make(clock, max_bytes=1000, max_line_bytes=80)
    output.feed("stdout", b"".join(b"line %04d\n" % n for n in range(1, 201)))
    output.feed("stderr", b"the error\n")
    kinds = [k for b in batches for k, _ in b]
    assert kinds == ["log", "log_held"]  # the head, then word that the rest is held
    held = batches[1][0][1]
    assert (held["after_line"], held["tail_bytes"]) == (75, 250)
    summary = output.summary()
    events = events_of(batches)
    cut = next(e["data"] for e in events if e["kind"] == "log_cut")
    # The tail window holds the last 25 lines: 176..200 and the error line (201) minus one.
    assert (cut["after_line"], cut["lines_left_out"], cut["bytes_left_out"]) == (75, 101, 1010)
    lines = log_lines(events)
    assert lines[:75] == [f"line {n:04d}" for n in range(1, 76)]
    assert lines[75:] == [f"line {n:04d}" for n in range(177, 201)] + ["the error"]
    tail = [e["data"] for e in events if e["kind"] == "log"][-2:]
    assert tail[0]["first_line"] == 75 + 101 + 1 and tail[1]["stream"] == "stderr"
    assert summary == {"lines": 201, "bytes": 2010, "lines_left_out": 101,
                       "bytes_left_out": 1010}


def test_output_just_past_the_head_loses_nothing(clock):
    output, batches = make(clock, max_bytes=1000, max_line_bytes=80)
    output.feed("stdout", b"".join(b"line %04d\n" % n for n in range(1, 91)))
    assert output.summary() == {"lines": 90, "bytes": 900}
    events = events_of(batches)
    assert "log_cut" not in [e["kind"] for e in events]
    assert log_lines(events) == [f"line {n:04d}" for n in range(1, 91)]
