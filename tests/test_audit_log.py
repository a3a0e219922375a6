"""The audit log contract against the in-process log and the ``va_audit`` table (over the
gateway), and what only the Supabase log does: batched writes in the background, appends
that never wait for Supabase, a bounded buffer."""

import logging
import threading
import time

import pytest

from app.audit import AuditQuery, MemoryAuditLog
from app.audit.supabase import SupabaseAuditLog
from tests.audit_contract import AuditLogContract, record
from tests.support.processes import wait_until
from tests.support.supabase_fixtures import own_gateway


class TestMemoryAuditLog(AuditLogContract):
    @pytest.fixture
    def audit_log(self):
        return MemoryAuditLog()

    @pytest.fixture
    def reopen(self, audit_log):
        return lambda: audit_log  # nothing outlives the process: the same log


def open_log(gateway, **options) -> SupabaseAuditLog:
    return SupabaseAuditLog(gateway.url, gateway.key, timeout=2.0, **options)


def stored(postgres, gateway) -> list[int]:
    """The task ids of the records in the table, in id order (read past the gateway)."""
    with postgres.connect(gateway.dbname) as conn:
        return [task_id for (task_id,) in
                conn.execute("SELECT task_id FROM va_audit ORDER BY id").fetchall()]


@pytest.mark.live
class TestSupabaseAuditLog(AuditLogContract):
    @pytest.fixture
    def audit_log(self, supabase_db):
        log = open_log(supabase_db)
        yield log
        log.close()

    @pytest.fixture
    def reopen(self, supabase_db):
        logs = []
        yield lambda: logs.append(open_log(supabase_db)) or logs[-1]
        for log in logs:
            log.close()


@pytest.mark.live
def test_appends_are_written_in_batches_by_the_background_writer(supabase_db, postgres):
    log = open_log(supabase_db)
    try:
        for n in range(1, 51):  # fifty requests' records, one append each
            log.append([record(n)])
        # Nobody flushes: the writer does, within a round or two.
        wait_until(lambda: len(stored(postgres, supabase_db)) == 50, timeout=10,
                   message="the background writer")
        assert stored(postgres, supabase_db) == list(range(1, 51))
        inserts = supabase_db.counts().get("POST va_audit", 0)
        assert 1 <= inserts <= 5, inserts  # a bulk insert per round, not one per record
    finally:
        log.close()


@pytest.mark.live
def test_appends_do_not_wait_for_a_missing_supabase_and_are_kept(postgres):
    with own_gateway(postgres) as gateway:
        log = open_log(gateway)
        try:
            gateway.kill()
            started = time.monotonic()
            for n in range(1, 101):
                log.append([record(n)])
            # No request is made in append: even a loaded machine does 100 in well under
            # the client's timeout (2 s), which one request to a dead server could cost.
            assert time.monotonic() - started < 1.0
            log.flush()  # fails quietly: the records wait
            assert log.waiting == 100
            gateway.start()
            wait_until(lambda: len(stored(postgres, gateway)) == 100, timeout=10,
                       message="the records written once Supabase answers")
            assert stored(postgres, gateway) == list(range(1, 101))
            assert log.waiting == 0
        finally:
            log.close()


@pytest.mark.live
def test_the_buffer_is_bounded_and_says_so_once(postgres, caplog):
    with own_gateway(postgres) as gateway:
        log = open_log(gateway, max_waiting=5)
        try:
            gateway.kill()
            with caplog.at_level(logging.ERROR, logger="app.audit.supabase"):
                for n in range(1, 9):
                    log.append([record(n)])
                log.append([record(9), record(10)])
            assert log.waiting == 5
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and "the oldest are dropped" in errors[0].getMessage()
            gateway.start()
            log.flush()
            assert stored(postgres, gateway) == [6, 7, 8, 9, 10]  # the newest
        finally:
            log.close()


@pytest.mark.live
def test_close_writes_what_waits_and_stops_the_writer(supabase_db, postgres):
    log = open_log(supabase_db, interval=3600)  # the writer would not get to it
    log.append([record(1), record(2)])
    [writer] = log._writer.threads
    assert writer is not None and writer.is_alive()
    log.close()
    assert not writer.is_alive()
    assert stored(postgres, supabase_db) == [1, 2]


@pytest.mark.live
def test_query_reads_the_appends_of_another_process(supabase_db):
    one, other = open_log(supabase_db), open_log(supabase_db)
    try:
        one.append([record(1, actor="alice")])
        one.flush()
        other.append([record(2, actor="bob")])
        assert [r.actor for r in other.query(AuditQuery())] == ["bob", "alice"]
        assert [r.actor for r in one.query(AuditQuery(actor="bob"))] == ["bob"]
    finally:
        one.close()
        other.close()


def test_concurrent_appends_keep_every_record():
    log = MemoryAuditLog()
    threads = [threading.Thread(target=lambda k=k: [log.append([record(k * 100 + n)])
                                                    for n in range(100)]) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log.query(AuditQuery(limit=1000))) == 400
