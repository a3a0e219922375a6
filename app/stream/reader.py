"""Reading a ``text/event-stream``: lines in, messages out.

The client side of what :mod:`.sse` writes, shared by the command line (``ops follow``) and the
LLM runner (a model server's answer). It parses lines only; reading them from a connection,
with whatever limits and stop checks the caller needs, is the caller's part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class Message:
    """One message's fields; a field the message did not have is None.

    ``data`` is its ``data:`` lines joined with ``"\\n"``; ``retry`` is in milliseconds (a value
    that is not all ASCII digits is ignored, as a browser ignores it)."""

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None


def read_messages(lines: Iterable[bytes], *, errors: str = "replace") -> Iterator[Message]:
    """Each message in ``lines`` (bytes, line endings optional), once a blank line ends it.

    Comments (``:`` lines, such as heartbeats) and unknown fields are skipped, and so is a block
    that holds nothing else. Lines left at the end of ``lines`` without a closing blank line are
    not a message (browsers drop them too). ``errors`` is how ``data`` that is not UTF-8 is
    decoded: ``"replace"``, as a browser does, or ``"strict"`` to raise UnicodeDecodeError; the
    other fields are always decoded with replacement.
    """
    data: list[str] = []
    fields: dict[str, str | int] = {}
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line:
            if data or fields:
                yield Message(data="\n".join(data) if data else None, **fields)
            data, fields = [], {}
        elif not line.startswith(b":"):
            name, _, value = line.partition(b":")  # a line without ":" is a name, value ""
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value.decode("utf-8", errors))
            elif name in (b"event", b"id"):
                fields[name.decode()] = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():  # bytes.isdigit(): ASCII digits only
                fields["retry"] = int(value)
