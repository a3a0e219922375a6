"""The Supabase store's HTTP client against a server that keeps connections alive, as
PostgREST does (the tests' gateway closes each one)."""

from __future__ import annotations

import http.server
import threading

import pytest

from app.store.supabase_rest import MAX_IDLE_CONNECTIONS, SupabaseRest
from live import wait_until

BURST = 3 * MAX_IDLE_CONNECTIONS


class KeepAliveServer(http.server.ThreadingHTTPServer):
    """Answers ``[]`` to every GET over HTTP/1.1 keep-alive, holding the first ``BURST``
    answers until all of those requests are in at once; counts the connections it holds open."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), KeepAliveHandler)
        self.all_in = threading.Barrier(BURST)
        self.lock = threading.Lock()
        self.open_connections = 0
        self.connections = 0
        self.requests = 0


class KeepAliveHandler(http.server.BaseHTTPRequestHandler):
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
            in_burst = self.server.requests <= BURST
        if in_burst:
            try:
                self.server.all_in.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass  # the assertions below say what went wrong
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    server = KeepAliveServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_burst_leaves_a_bounded_number_of_idle_connections(server):
    rest = SupabaseRest(f"http://127.0.0.1:{server.server_address[1]}",
                        "test-service-role-key-0123456789", timeout=10)
    answers, failures = [], []

    def read():
        try:
            answers.append(rest.run(rest.table("va_task_events").select("id").eq("task_id", 1)))
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=read) for _ in range(BURST)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert not failures and answers == [[]] * BURST
        assert server.requests == BURST and not server.all_in.broken  # all were in at once
        # Each idle connection costs a readability check whenever the pool hands one out
        # or takes one back, so the pool keeps a few and closes the rest.
        wait_until(lambda: server.open_connections <= MAX_IDLE_CONNECTIONS, timeout=10,
                   message=f"at most {MAX_IDLE_CONNECTIONS} kept-alive connections")
        rest.run(rest.table("va_task_events").select("id").eq("task_id", 1))
        assert server.requests == BURST + 1
        assert server.connections == BURST  # the last request went over a kept one
    finally:
        rest.close()
