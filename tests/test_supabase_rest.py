"""The Supabase store's HTTP client against a server that keeps connections alive, as
PostgREST does (the tests' gateway closes each one)."""

from __future__ import annotations

import threading

import pytest

from app.store.supabase.rest import MAX_IDLE_CONNECTIONS, SupabaseRest
from tests.support.keepalive_server import KeepAliveServer
from tests.support.processes import wait_until

BURST = 3 * MAX_IDLE_CONNECTIONS


@pytest.fixture
def server():
    """Holds the first ``BURST`` answers until all of those requests are in at once."""
    all_in = threading.Barrier(BURST)

    def hold(number: int) -> None:
        if number <= BURST:
            try:
                all_in.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass  # the assertions say what went wrong

    server = KeepAliveServer(before_answer=hold)
    server.all_in = all_in
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_burst_leaves_a_bounded_number_of_idle_connections(server):
    rest = SupabaseRest(f"http://127.0.0.1:{server.port}",
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
