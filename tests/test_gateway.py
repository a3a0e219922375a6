"""The PostgREST stand-in is strict (a query shape it does not know fails loudly), and the
migration it serves does what docs/supabase.md says."""

import psycopg
import pytest
import requests

from tests.support.gateway import SERVICE_KEY
from tests.support.postgres import MIGRATIONS

pytestmark = pytest.mark.live

AUTH = {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}


def call(gateway, method, path, headers=None, **kwargs):
    return requests.request(method, f"{gateway.url}/rest/v1/{path}",
                            headers={**AUTH, **(headers or {})}, timeout=10, **kwargs)


@pytest.mark.parametrize("method, path, headers, body", [
    ("GET", "va_tasks?title=like.x%25", {}, None),
    ("GET", "va_tasks?or=(id.eq.1,id.eq.2)", {}, None),
    ("GET", "va_tasks?select=id,va_task_events(*)", {}, None),
    ("GET", "va_tasks?order=id.desc.nullslast", {}, None),
    ("GET", "va_tasks", {"Prefer": "count=planned"}, None),
    ("PATCH", "va_tasks?id=eq.1", {"Prefer": "count=exact"}, {"status": "running"}),
    ("GET", "va_tasks", {"Accept": "text/csv"}, None),
    ("DELETE", "va_tasks?id=eq.1&limit=1", {}, None),
    ("DELETE", "va_tasks?id=eq.1", {}, {"status": "done"}),
    ("POST", "rpc/anything", {}, {}),
    ("POST", "va_tasks", {}, [{"title": "a", "status": "queued"}]),
    ("PATCH", "va_tasks?id=eq.1&limit=1", {}, {"status": "running"}),
    ("GET", "va_task_events?data_json->created_by=eq.x", {}, None),
    ("GET", "va_task_events?data_json->>created_by=like.x%25", {}, None),
    ("GET", "va_tasks?on_conflict=id", {}, None),
    ("POST", "va_task_cancels?on_conflict=task_id", {"Prefer": "resolution=merge-duplicates"},
     {"task_id": 1, "requested_by": "a"}),
    ("POST", "va_task_cancels", {"Prefer": "resolution=ignore-duplicates"},
     {"task_id": 1, "requested_by": "a"}),
])
def test_unknown_query_shapes_answer_501(supabase_db, method, path, headers, body):
    response = call(supabase_db, method, path, headers, json=body)
    assert response.status_code == 501, response.text
    assert "does not implement" in response.json()["message"]


@pytest.mark.parametrize("headers", [
    {},
    {"apikey": SERVICE_KEY},
    {"apikey": SERVICE_KEY, "Authorization": "Bearer wrong"},
    {"apikey": "wrong", "Authorization": f"Bearer {SERVICE_KEY}"},
])
def test_the_service_key_is_required_in_both_headers(supabase_db, headers):
    response = requests.get(f"{supabase_db.url}/rest/v1/va_tasks", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid API key"


def test_count_exact_answers_the_total_in_content_range(supabase_db):
    for n in range(3):
        call(supabase_db, "POST", "va_tasks", {}, json={"title": f"t{n}"})
    counted = {"Prefer": "count=exact"}
    page = call(supabase_db, "GET", "va_tasks?select=id&order=id.asc&limit=2", counted)
    assert (page.status_code, page.headers["Content-Range"]) == (206, "0-1/3")
    assert [row["id"] for row in page.json()] == [1, 2]
    whole = call(supabase_db, "GET", "va_tasks?select=id&id=gt.1", counted)
    assert (whole.status_code, whole.headers["Content-Range"]) == (200, "0-1/2")
    none = call(supabase_db, "GET", "va_tasks?select=id&limit=0", counted)
    assert (none.status_code, none.headers["Content-Range"], none.json()) == (206, "*/3", [])


def test_errors_have_postgrest_shape(supabase_db):
    single = {"Accept": "application/vnd.pgrst.object+json"}
    cases = [
        (call(supabase_db, "GET", "va_tasks?id=eq.1", single), 406, "PGRST116"),
        (call(supabase_db, "GET", "nope"), 404, "PGRST205"),
        (call(supabase_db, "GET", "va_tasks?select=nope"), 400, "42703"),
        (call(supabase_db, "GET", "va_tasks?id=eq.x"), 400, "22P02"),
        (call(supabase_db, "PATCH", "va_tasks", json={"status": "done"}), 400, "21000"),
        (call(supabase_db, "POST", "va_tasks", data=b"{", headers={
            "Content-Type": "application/json"}), 400, "PGRST102"),
        (call(supabase_db, "POST", "va_tasks", json={"title": "t", "status": "bogus"}),
         400, "23514"),
        (call(supabase_db, "POST", "va_task_events", json={"task_id": 999, "kind": "x"}),
         409, "23503"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert set(response.json()) == {"code", "details", "hint", "message"}


def test_representation_single_object_and_minimal(supabase_db):
    prefer = {"Prefer": "return=representation"}
    created = call(supabase_db, "POST", "va_tasks", prefer, json={"title": "t", "status": "queued"})
    assert created.status_code == 201 and created.json()[0]["title"] == "t"
    task_id = created.json()[0]["id"]
    minimal = call(supabase_db, "POST", "va_task_events", {"Prefer": "return=minimal"},
                   json={"task_id": task_id, "kind": "created", "data_json": {"a": 1}})
    assert (minimal.status_code, minimal.content) == (201, b"")
    one = call(supabase_db, "GET", f"va_tasks?select=id,status&id=eq.{task_id}",
               {"Accept": "application/vnd.pgrst.object+json"})
    assert one.json() == {"id": task_id, "status": "queued"}
    patched = call(supabase_db, "PATCH", f"va_tasks?id=eq.{task_id}&status=in.(queued)", prefer,
                   json={"status": "running"})
    assert [row["status"] for row in patched.json()] == ["running"]
    again = call(supabase_db, "PATCH", f"va_tasks?id=eq.{task_id}&status=in.(queued)", prefer,
                 json={"status": "running"})
    assert again.json() == []


def test_migration_is_idempotent_and_locks_out_other_roles(postgres, supabase_db):
    with postgres.connect(supabase_db.dbname) as conn:
        for path in MIGRATIONS:
            conn.execute(path.read_text())  # a second time: nothing changes, nothing fails
        conn.execute("INSERT INTO va_tasks (title) VALUES ('secret')")
        conn.execute("DO $$ BEGIN CREATE ROLE anon; EXCEPTION WHEN duplicate_object "
                     "THEN NULL; END $$")
        conn.execute("GRANT SELECT, INSERT ON va_tasks TO anon")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE anon")
            assert conn.execute("SELECT count(*) FROM va_tasks").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("INSERT INTO va_tasks (title) VALUES ('x')")


def test_ignore_duplicates_keeps_the_first_row(supabase_db):
    prefer = {"Prefer": "return=representation"}
    task_id = call(supabase_db, "POST", "va_tasks", prefer,
                   json={"title": "t", "status": "running"}).json()[0]["id"]
    ignore = {"Prefer": "return=representation,resolution=ignore-duplicates"}
    path = "va_task_cancels?on_conflict=task_id"
    first = call(supabase_db, "POST", path, ignore, json={"task_id": task_id,
                                                          "requested_by": "bob"})
    assert first.status_code == 201 and first.json()[0]["requested_by"] == "bob"
    second = call(supabase_db, "POST", path, ignore, json={"task_id": task_id,
                                                           "requested_by": "carol"})
    assert (second.status_code, second.json()) == (201, [])  # skipped, not an error
    plain = call(supabase_db, "POST", "va_task_cancels", prefer,
                 json={"task_id": task_id, "requested_by": "dave"})
    assert (plain.status_code, plain.json()["code"]) == (409, "23505")
    rows = call(supabase_db, "GET", f"va_task_cancels?select=requested_by&task_id=eq.{task_id}")
    assert rows.json() == [{"requested_by": "bob"}]
    unknown = call(supabase_db, "POST", path, ignore, json={"task_id": 999,
                                                            "requested_by": "bob"})
    assert (unknown.status_code, unknown.json()["code"]) == (409, "23503")


def test_json_text_filters_and_ranges(supabase_db):
    prefer = {"Prefer": "return=representation"}
    ids = []
    for owner in ("alice", "bob", "alice"):
        task_id = call(supabase_db, "POST", "va_tasks", prefer,
                       json={"title": "t", "status": "queued"}).json()[0]["id"]
        call(supabase_db, "POST", "va_task_events", prefer, json={
            "task_id": task_id, "kind": "created", "data_json": {"created_by": owner}})
        ids.append(task_id)
    found = call(supabase_db, "GET", "va_task_events?select=task_id&kind=eq.created"
                 "&data_json->>created_by=eq.alice&order=task_id.desc")
    assert found.json() == [{"task_id": ids[2]}, {"task_id": ids[0]}]
    ranged = call(supabase_db, "GET", f"va_tasks?select=id&id=gte.{ids[1]}&id=lte.{ids[2]}"
                  "&order=id")
    assert ranged.json() == [{"id": ids[1]}, {"id": ids[2]}]


def test_a_composite_conflict_target_and_is_null_filters(supabase_db):
    """What the idempotency keys send: a claim on (actor, key), and deletes on task_id."""
    ignore = {"Prefer": "return=representation,resolution=ignore-duplicates"}
    path = "va_idempotency_keys?on_conflict=actor,key"
    row = {"actor": "alice", "key": "k", "fingerprint": "a",
           "created_at": "2026-12-02T01:00:00+00:00"}
    first = call(supabase_db, "POST", path, ignore, json=row)
    assert first.status_code == 201 and first.json()[0]["task_id"] is None
    second = call(supabase_db, "POST", path, ignore, json={**row, "fingerprint": "b"})
    assert (second.status_code, second.json()) == (201, [])  # as PostgREST: nothing inserted
    other = call(supabase_db, "POST", path, ignore, json={**row, "actor": "bob"})
    assert len(other.json()) == 1
    pending = call(supabase_db, "GET", "va_idempotency_keys?select=actor&task_id=is.null"
                   "&order=actor")
    assert pending.json() == [{"actor": "alice"}, {"actor": "bob"}]
    assert call(supabase_db, "GET", "va_idempotency_keys?task_id=is.maybe").status_code == 400
    deleted = call(supabase_db, "DELETE", "va_idempotency_keys?actor=eq.bob&task_id=is.null",
                   {"Prefer": "return=representation"})
    assert [r["actor"] for r in deleted.json()] == ["bob"]
