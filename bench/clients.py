"""The stream load generator, a process of its own: ``python -m bench.clients``.

It reads its spec as one JSON line on stdin, then opens one Server-Sent Events stream per
path in the spec (asyncio, stdlib only), stamping each message with the wall-clock time of
the read that completed it. It then prints one JSON line ``{"open": n, "failed": n,
"errors": {...}, "started": t}`` once every stream answered (or the open timeout passed).
On the line ``stop`` (or after ``max_seconds``) it closes every stream and prints one JSON
line of results: ``{"events": [[created_at, arrival], ...], "pings": [[arrival, ...] per
stream], "closed_early": n}`` (``pings``, when asked for, times every message, comment or
event). Times are Unix seconds; ``created_at`` comes from the event's data.

With ``reconnect_delay`` set, a stream that ends (its body ends or its connection is lost)
is opened again that many seconds later with ``Last-Event-ID``, as EventSource does, until
``stop``; a refused attempt is retried after the same delay. With ``detail``, the results
also hold ``streams``: per stream, when each of its connections opened and ended, and its
events as ``[id, n, created_at, arrival]`` (``n``: the tick number in the event's data).
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
from datetime import datetime

HEADERS, BODY = 0, 1


class ChunkedDecoder:
    """Incremental decoder of an HTTP/1.1 chunked body."""

    def __init__(self):
        self.raw = b""
        self.data_left = 0
        self.crlf_left = 0
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        self.raw += data
        out = []
        while self.raw and not self.ended:
            if self.data_left:
                piece = self.raw[:self.data_left]
                out.append(piece)
                self.data_left -= len(piece)
                self.raw = self.raw[len(piece):]
            elif self.crlf_left:
                skip = min(self.crlf_left, len(self.raw))
                self.raw = self.raw[skip:]
                self.crlf_left -= skip
            else:
                line_end = self.raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self.raw[:line_end].split(b";")[0], 16)
                self.raw = self.raw[line_end + 2:]
                self.ended = size == 0
                self.data_left, self.crlf_left = size, 2
        return b"".join(out)


class Record:
    """What one stream received, over all its connections."""

    def __init__(self, path: str):
        self.path = path
        self.events: list[tuple[float, bytes]] = []
        self.pings: list[float] = []
        self.opens: list[float] = []
        self.ends: list[float] = []
        self.last_id: bytes | None = None


class Stream(asyncio.Protocol):
    """One SSE connection: sends its GET, splits the body into messages, timestamps them;
    ``on_end`` is called once, when the body ends or the connection is lost."""

    def __init__(self, request: bytes, record: Record, keep_pings: bool, on_end=None):
        self.request = request
        self.record = record
        self.keep_pings = keep_pings
        self.on_end = on_end
        self.state = HEADERS
        self.head = b""
        self.body = b""
        self.chunks: ChunkedDecoder | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.transport = None
        self.lost = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the response"))
        self.record.ends.append(time.time())
        if self.on_end is not None:
            self.on_end()

    def data_received(self, data: bytes):
        now = time.time()
        if self.state == HEADERS:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            status = head.split(b" ", 2)[1]
            if status != b"200":
                self.opened.set_exception(ConnectionError(f"HTTP {status.decode()}"))
                self.transport.close()
                return
            if b"transfer-encoding: chunked" in head.lower():
                self.chunks = ChunkedDecoder()
            self.state = BODY
            self.record.opens.append(now)
            self.opened.set_result(now)
        if self.chunks is not None:
            data = self.chunks.feed(data)
        self.body += data
        record = self.record
        while (end := self.body.find(b"\n\n")) >= 0:
            message, self.body = self.body[:end], self.body[end + 2:]
            if self.keep_pings:
                record.pings.append(now)  # any message shows the stream alive
            if b"data:" in message:
                record.events.append((now, message))
                if message.startswith(b"id:"):
                    record.last_id = message[3:message.find(b"\n")].strip()
        if self.chunks is not None and self.chunks.ended:
            self.transport.close()  # the response ended: its connection may be kept alive


def payload(message: bytes) -> dict:
    """The JSON of an event's ``data`` line."""
    for line in message.split(b"\n"):
        if line.startswith(b"data:"):
            return json.loads(line[5:])
    raise ValueError("an event without data")


def created_at(message: bytes) -> float:
    """The ``created_at`` of an event's JSON data, as Unix seconds."""
    return datetime.fromisoformat(payload(message)["created_at"]).timestamp()


def detail(record: Record) -> dict:
    """One stream's connections and events, for the checks of reconnecting streams."""
    events = []
    for arrival, message in record.events:
        data = payload(message)
        n = data["data"].get("n") if isinstance(data.get("data"), dict) else None
        events.append([data["id"], n, datetime.fromisoformat(data["created_at"]).timestamp(),
                       arrival])
    return {"opens": record.opens, "ends": record.ends, "events": events}


def read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue) -> None:
    """Pass stdin's lines to the loop (from a daemon thread: it never holds up the exit)."""
    def forward() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, "")
    threading.Thread(target=forward, daemon=True).start()


async def run() -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()
    read_lines(loop, lines)
    spec = json.loads(await lines.get())
    host, port = "127.0.0.1", int(spec["port"])
    headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    records = [Record(path) for path in spec["paths"]]
    streams: list[Stream] = []
    errors: collections.Counter = collections.Counter()
    connecting = asyncio.Semaphore(int(spec.get("connect_concurrency", 100)))
    open_timeout = float(spec.get("open_timeout", 60))
    keep_pings = spec.get("keep_pings", False)
    delay = spec.get("reconnect_delay")
    stopping = False

    def request(record: Record) -> bytes:
        resume = f"Last-Event-ID: {record.last_id.decode()}\r\n" if record.last_id else ""
        return (f"GET {record.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Accept: text/event-stream\r\n{headers}{resume}\r\n").encode()

    def ended(record: Record) -> None:
        if delay is not None and not stopping:
            loop.call_later(float(delay), lambda: loop.create_task(reopen(record)))

    async def reopen(record: Record) -> None:
        """Open ``record``'s stream again, as EventSource does after it ends."""
        if stopping:
            return
        try:
            _, stream = await loop.create_connection(
                lambda: Stream(request(record), record, keep_pings, lambda: ended(record)),
                host, port)
            streams.append(stream)
        except OSError:  # the server is not back yet: try again after the delay
            ended(record)

    async def open_stream(record: Record) -> None:
        try:
            async with connecting:
                _, stream = await asyncio.wait_for(loop.create_connection(
                    lambda: Stream(request(record), record, keep_pings,
                                   lambda: ended(record)),
                    host, port), open_timeout)
            streams.append(stream)
            await asyncio.wait_for(stream.opened, open_timeout)
        except (TimeoutError, OSError, ConnectionError) as error:
            errors[str(error) or type(error).__name__] += 1

    started = time.time()
    await asyncio.gather(*(open_stream(record) for record in records))
    opened = sum(bool(record.opens) for record in records)
    print(json.dumps({"open": opened, "failed": len(records) - opened,
                      "errors": dict(errors.most_common(5)), "started": started}), flush=True)

    try:
        await asyncio.wait_for(lines.get(), float(spec.get("max_seconds", 300)))
    except TimeoutError:
        pass
    stopping = True
    closed_early = sum(bool(record.ends) for record in records)
    for stream in streams:
        if stream.transport is not None:
            stream.transport.abort()
    events = [(created_at(message), arrival) for record in records
              for arrival, message in record.events]
    results = {"events": events, "pings": [r.pings for r in records if r.pings],
               "closed_early": closed_early}
    if spec.get("detail"):
        results["streams"] = [detail(record) for record in records]
    print(json.dumps(results), flush=True)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
