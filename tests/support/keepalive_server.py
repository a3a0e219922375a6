"""An HTTP/1.1 server that keeps connections alive, as PostgREST does (the tests' gateway
closes each one): it answers ``[]`` to every GET and counts connections and requests.

``python -m tests.support.keepalive_server PORT`` serves until it is stopped
(``bench/keepalive.py``); the tests start it in a thread.
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Callable


class KeepAliveServer(http.server.ThreadingHTTPServer):
    """``before_answer(n)`` runs before the answer to the n-th request (from 1)."""

    daemon_threads = True

    def __init__(self, port: int = 0, before_answer: Callable[[int], None] = lambda n: None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.before_answer = before_answer
        self.lock = threading.Lock()
        self.open_connections = 0
        self.connections = 0
        self.requests = 0

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.open_connections += 1
            self.server.connections += 1

    def finish(self):
        with self.server.lock:
            self.server.open_connections -= 1
        super().finish()

    def do_GET(self):
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
        self.server.before_answer(number)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    KeepAliveServer(int(sys.argv[1])).serve_forever()
