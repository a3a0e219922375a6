"""Parsing Server-Sent Events in tests, from the wire format (not from our own code)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def parse_messages(lines: Iterable[str]) -> Iterator[dict]:
    """Yield each SSE message as ``{"id", "event", "data", "retry", "comment"}`` fields."""
    message: dict = {}
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if message:
                yield message
            message = {}
            continue
        if line.startswith(":"):
            message.setdefault("comment", []).append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            message["data"] = message["data"] + "\n" + value if "data" in message else value
        else:
            message[name] = value
    if message:
        yield message


def events(text: str) -> list[dict]:
    """The dispatched events of an SSE body: id, kind and decoded data."""
    found = []
    for message in parse_messages(text.splitlines()):
        if "data" in message:
            found.append({"id": int(message["id"]), "kind": message.get("event", "message"),
                          "data": json.loads(message["data"])})
    return found


DEV_KINDS = ["created", "status", "tick", "tick", "tick", "tick", "done"]
