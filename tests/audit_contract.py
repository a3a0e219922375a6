"""The audit log contract's tests, written once; each backend's test module subclasses
:class:`AuditLogContract` and provides an ``audit_log`` fixture (a fresh, empty log)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from app.audit import AuditQuery, AuditRecord

T0 = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)


def record(n: int, **fields) -> AuditRecord:
    """The n-th record of a test: a second after the previous one."""
    values = dict(action="task.create", outcome="ok", at=T0 + timedelta(seconds=n),
                  actor="alice", task_id=n, client="10.0.0.1", request_id=f"req-{n}",
                  detail={"status": 201})
    values.update(fields)
    return AuditRecord(**values)


def ids(records) -> list[int]:
    return [r.id for r in records]


class AuditLogContract:
    def test_records_come_back_newest_first_with_ids_in_append_order(self, audit_log):
        audit_log.append([record(1), record(2)])
        audit_log.append([record(3)])
        found = audit_log.query(AuditQuery())
        assert [r.task_id for r in found] == [3, 2, 1]
        assert ids(found) == sorted(ids(found), reverse=True) and all(i > 0 for i in ids(found))

    def test_fields_round_trip(self, audit_log):
        full = record(1, detail={"status": 409, "error": "héllo ✓", "nested": {"a": [1, 2]}})
        bare = AuditRecord(action="auth.refused", outcome="denied", at=T0)
        audit_log.append([full, bare])
        stored_bare, stored_full = audit_log.query(AuditQuery())
        assert stored_full == dataclasses.replace(full, id=stored_full.id)
        assert stored_full.at == full.at and stored_full.at.tzinfo is not None
        assert (stored_bare.actor, stored_bare.task_id, stored_bare.client,
                stored_bare.request_id, stored_bare.detail) == (None, None, None, None, {})
        assert stored_full.to_dict()["at"] == "2026-12-01T09:00:01.123456Z"

    def test_the_time_is_kept_in_another_zone(self, audit_log):
        paris = timezone(timedelta(hours=1))
        audit_log.append([record(1, at=datetime(2026, 12, 1, 10, 0, tzinfo=paris))])
        [stored] = audit_log.query(AuditQuery())
        assert stored.at == datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def test_filters(self, audit_log):
        audit_log.append([
            record(1, actor="alice", action="task.create", task_id=7),
            record(2, actor="bob", action="task.cancel", task_id=7),
            record(3, actor="alice", action="task.cancel", task_id=8),
            record(4, actor=None, action="auth.refused", outcome="denied", task_id=None),
        ])

        def tasks_of(**filters):
            return [(r.actor, r.action, r.task_id) for r in audit_log.query(AuditQuery(**filters))]

        assert tasks_of(actor="alice") == [("alice", "task.cancel", 8),
                                           ("alice", "task.create", 7)]
        assert tasks_of(action="task.cancel") == [("alice", "task.cancel", 8),
                                                  ("bob", "task.cancel", 7)]
        assert tasks_of(task_id=7) == [("bob", "task.cancel", 7), ("alice", "task.create", 7)]
        assert tasks_of(actor="alice", action="task.cancel", task_id=8) == [
            ("alice", "task.cancel", 8)]
        assert tasks_of(actor="nobody") == []
        # since is inclusive, until exclusive
        assert tasks_of(since=T0 + timedelta(seconds=2)) == [
            (None, "auth.refused", None), ("alice", "task.cancel", 8), ("bob", "task.cancel", 7)]
        assert tasks_of(until=T0 + timedelta(seconds=2)) == [("alice", "task.create", 7)]
        assert tasks_of(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=3)) == [
            ("bob", "task.cancel", 7)]

    def test_pages_with_the_cursor(self, audit_log):
        audit_log.append([record(n) for n in range(1, 8)])
        seen, cursor = [], None
        while page := audit_log.query(AuditQuery(limit=3, before_id=cursor)):
            assert len(page) <= 3
            seen.extend(r.task_id for r in page)
            cursor = page[-1].id
        assert seen == list(range(7, 0, -1))
        first = audit_log.query(AuditQuery(limit=2, actor="alice"))
        after = audit_log.query(AuditQuery(limit=10, actor="alice", before_id=first[-1].id))
        assert [r.task_id for r in first + after] == list(range(7, 0, -1))

    def test_many_records_in_one_append(self, audit_log):
        audit_log.append([record(n) for n in range(1, 1201)])
        audit_log.flush()
        found = audit_log.query(AuditQuery(limit=200))
        assert [r.task_id for r in found] == list(range(1200, 1000, -1))
        oldest = audit_log.query(AuditQuery(limit=5, until=T0 + timedelta(seconds=3)))
        assert [r.task_id for r in oldest] == [2, 1]

    def test_purge_deletes_the_oldest_in_batches(self, audit_log):
        audit_log.append([record(n) for n in range(1, 6)])
        cutoff = T0 + timedelta(seconds=4)  # records 1 to 3 are older
        assert audit_log.purge(T0, limit=10) == 0
        assert audit_log.purge(cutoff, limit=2) == 2
        assert [r.task_id for r in audit_log.query(AuditQuery())] == [5, 4, 3]
        assert audit_log.purge(cutoff, limit=2) == 1
        assert audit_log.purge(cutoff, limit=2) == 0
        assert [r.task_id for r in audit_log.query(AuditQuery())] == [5, 4]

    def test_close_keeps_what_was_appended(self, audit_log, reopen):
        audit_log.append([record(1), record(2)])
        audit_log.close()
        later = reopen()
        assert [r.task_id for r in later.query(AuditQuery())] == [2, 1]
