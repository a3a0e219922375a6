"""The SSE message of an event: its wire format, formatted once however many streams send it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from app.store import Event
from app.stream import format_event
from tests.support.sse import events


def make_event(**data):
    return Event(id=7, task_id=3, kind="tick",
                 created_at=datetime(2026, 11, 28, 0, 40, tzinfo=timezone.utc), data=data)


def test_wire_format():
    text = format_event(make_event(n=1, note="é"))
    assert text.startswith("id: 7\nevent: tick\ndata: {") and text.endswith("}\n\n")
    [event] = events(text)
    assert event["data"] == {"id": 7, "task_id": 3, "kind": "tick",
                             "created_at": "2026-11-28T00:40:00.000000Z",
                             "data": {"n": 1, "note": "é"}}


def test_formatted_once_per_event(monkeypatch):
    event = make_event(n=1)
    calls = []
    real_dumps = json.dumps
    monkeypatch.setattr(json, "dumps", lambda *a, **k: calls.append(1) or real_dumps(*a, **k))
    first = format_event(event)
    assert format_event(event) is first and len(calls) == 1
    assert format_event(make_event(n=1)) == first and len(calls) == 2  # another object


def test_the_cached_text_leaves_the_event_as_it_was():
    event, twin = make_event(n=1), make_event(n=1)
    format_event(event)
    assert event == twin and repr(event) == repr(twin)
    assert event.to_dict() == twin.to_dict()
