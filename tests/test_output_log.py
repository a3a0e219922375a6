"""Output to log events: line splitting, long lines, rate and cap (a fake clock, no process)."""

from __future__ import annotations

from app.executor.runners.output import LogLimits, OutputLog
from tests.support.api import make_settings


def make(clock, **limits):
    """An OutputLog with the configured limits, but for ``limits``."""
    settings = make_settings()
    limits = {"max_line_bytes": settings.recipe_max_line_bytes,
              "lines_per_second": settings.recipe_log_lines_per_second,
              "max_lines": settings.recipe_max_log_lines, **limits}
    events = []
    output = OutputLog(lambda kind, data: events.append((kind, data)), LogLimits(**limits), clock)
    return output, events


def test_lines_are_split_across_chunks_and_streams(clock):
    output, events = make(clock)
    output.feed("stdout", b"one\ntw")
    output.feed("stderr", b"oops\r\n")
    output.feed("stdout", b"o\n\nthree")
    assert [d["line"] for _, d in events] == ["one", "oops", "two", ""]
    output.close("stdout")
    assert events[-1] == ("log", {"stream": "stdout", "line": "three"})
    assert output.summary() == {"lines": 5}


def test_invalid_utf8_is_replaced_not_fatal(clock):
    output, events = make(clock)
    output.feed("stdout", b"caf\xc3\xa9 \xff\n")
    assert events == [("log", {"stream": "stdout", "line": "café \ufffd"})]


def test_a_long_line_is_sent_cut_as_soon_as_it_passes_the_limit(clock):
    output, events = make(clock, max_line_bytes=100)
    output.feed("stdout", b"a" * 60)
    assert events == []
    output.feed("stdout", b"b" * 60)  # passes the limit without a newline: sent now
    assert events == [("log", {"stream": "stdout", "line": "a" * 60 + "b" * 40
                               + " [… line cut at 100 bytes]", "truncated": True})]
    output.feed("stdout", b"c" * 500 + b"\nnext\n")  # the rest of that line is dropped
    assert events[1:] == [("log", {"stream": "stdout", "line": "next"})]


def test_past_the_rate_lines_are_counted_then_reported(clock):
    output, events = make(clock, lines_per_second=2)  # a burst of 10
    output.feed("stdout", b"".join(b"%d\n" % n for n in range(15)))
    assert [d["line"] for k, d in events] == [str(n) for n in range(10)]
    clock.advance(1.0)  # two more lines' worth
    output.feed("stdout", b"15\n16\n17\n")
    assert events[10:] == [
        ("log_skipped", {"lines": 5, "bytes": 15,
                         "reason": "output came faster than 2 lines a second"}),
        ("log", {"stream": "stdout", "line": "15"}),
        ("log", {"stream": "stdout", "line": "16"}),
    ]
    assert output.summary() == {"lines": 12, "skipped_lines": 6, "skipped_bytes": 18}
    assert events[-1][0] == "log_skipped" and events[-1][1]["lines"] == 1


def test_past_the_cap_lines_are_counted_and_the_cap_announced_once(clock):
    output, events = make(clock, max_lines=3)
    output.feed("stderr", b"a\nb\nc\nd\ne\n")
    assert [k for k, _ in events] == ["log", "log", "log", "log_limit"]
    assert events[3][1]["max_lines"] == 3
    output.feed("stderr", b"f\n")
    assert output.summary() == {"lines": 3, "skipped_lines": 3, "skipped_bytes": 6}
    assert events[-1] == ("log_skipped", {
        "lines": 3, "bytes": 6, "reason": "the task's limit of 3 log lines was reached"})
