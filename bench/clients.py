"""The stream load generator, a process of its own: ``python -m bench.clients``.

It reads its spec as one JSON line on stdin, then opens one Server-Sent Events stream per
path in the spec (asyncio, stdlib only), stamping each message with the wall-clock time of
the read that completed it. It then prints one JSON line ``{"open": n, "failed": n,
"errors": {...}}`` once every stream answered (or the open timeout passed). On the line
``stop`` (or after ``max_seconds``) it closes every stream and prints one JSON line of
results: ``{"events": [[created_at, arrival], ...], "pings": [[arrival, ...] per stream],
"closed_early": n}`` (``pings``, when asked for, times every message, comment or event).
Times are Unix seconds; ``created_at`` comes from the event's data.
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


class Stream(asyncio.Protocol):
    """One SSE client: sends its GET, splits the body into messages, timestamps them."""

    def __init__(self, request: bytes, keep_pings: bool):
        self.request = request
        self.keep_pings = keep_pings
        self.state = HEADERS
        self.head = b""
        self.body = b""
        self.chunks: ChunkedDecoder | None = None
        self.events: list[tuple[float, bytes]] = []
        self.pings: list[float] = []
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
            self.opened.set_result(now)
        if self.chunks is not None:
            data = self.chunks.feed(data)
        self.body += data
        while (end := self.body.find(b"\n\n")) >= 0:
            message, self.body = self.body[:end], self.body[end + 2:]
            if self.keep_pings:
                self.pings.append(now)  # any message shows the stream alive
            if b"data:" in message:
                self.events.append((now, message))


def created_at(message: bytes) -> float:
    """The ``created_at`` of an event's JSON data, as Unix seconds."""
    for line in message.split(b"\n"):
        if line.startswith(b"data:"):
            stamp = json.loads(line[5:])["created_at"]
            return datetime.fromisoformat(stamp).timestamp()
    raise ValueError("an event without data")


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
    streams: list[Stream] = []
    errors: collections.Counter = collections.Counter()
    connecting = asyncio.Semaphore(int(spec.get("connect_concurrency", 100)))
    open_timeout = float(spec.get("open_timeout", 60))

    async def open_stream(path: str) -> None:
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Accept: text/event-stream\r\n{headers}\r\n").encode()
        try:
            async with connecting:
                _, stream = await asyncio.wait_for(loop.create_connection(
                    lambda: Stream(request, spec.get("keep_pings", False)), host, port),
                    open_timeout)
            streams.append(stream)
            await asyncio.wait_for(stream.opened, open_timeout)
        except (TimeoutError, OSError, ConnectionError) as error:
            errors[str(error) or type(error).__name__] += 1

    await asyncio.gather(*(open_stream(path) for path in spec["paths"]))
    opened = sum(s.opened.done() and not s.opened.cancelled() and s.opened.exception() is None
                 for s in streams)
    print(json.dumps({"open": opened, "failed": len(spec["paths"]) - opened,
                      "errors": dict(errors.most_common(5))}), flush=True)

    try:
        await asyncio.wait_for(lines.get(), float(spec.get("max_seconds", 300)))
    except TimeoutError:
        pass
    closed_early = sum(s.lost for s in streams)
    for stream in streams:
        if stream.transport is not None:
            stream.transport.abort()
    events = [(created_at(message), arrival) for s in streams for arrival, message in s.events]
    print(json.dumps({"events": events, "pings": [s.pings for s in streams if s.pings],
                      "closed_early": closed_early}), flush=True)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
