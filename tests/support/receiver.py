"""A webhook receiver for tests: a small HTTP server in a thread that keeps every request.

``answers`` are the statuses of the first requests (then 200); ``hold_first`` makes the first
answer wait until the test calls :meth:`Receiver.release`."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .processes import wait_until


class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes):
        self.path = path
        self.headers = headers
        self.body = body
        self.status: int | None = None
        self.answered_at: datetime | None = None  # when the answer was sent


class Receiver:
    def __init__(self, answers=(), hold_first: bool = False):
        self.answers = list(answers)
        self.held = threading.Event()
        if not hold_first:
            self.held.set()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                received = Received(self.path, dict(self.headers), self.rfile.read(length))
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(received)
                if index == 0:
                    receiver.held.wait(30)
                status = receiver.answers[index] if index < len(receiver.answers) else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                received.status = status
                received.answered_at = datetime.now(timezone.utc)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.held.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """Let the first answer go."""
        self.held.set()

    def answered(self, count: int, timeout: float = 15) -> list[Received]:
        """Wait for ``count`` answered requests; all requests so far."""
        return wait_until(lambda: sum(r.answered_at is not None for r in self.requests) >= count
                          and list(self.requests), timeout=timeout,
                          message=lambda: f"{count} answered requests, got {len(self.requests)}")
