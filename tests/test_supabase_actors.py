"""Actors across processes over the Supabase store: a task created by one named credential
in one server and canceled by another through a second server names both, and the audit
trail (``va_audit``, written by each server in the background) has both calls."""

from __future__ import annotations

import pytest

from app.credential_file import stanza
from app.roles import Role
from tests.support.api import LiveAdmin
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.test_supabase_live import server_env, stored_kinds

pytestmark = [pytest.mark.live, pytest.mark.slow]

ALICE = "ops_alice-token-0123456789abcdefghijklmnop"
BOB = "ops_bob-token-0123456789abcdefghijklmnopqrs"


def audit(server, **filters) -> list[dict]:
    response = server.admin.get("/ops/audit", params=filters)  # the admin token
    assert response.status_code == 200, response.text
    return response.json()["records"]


def test_a_cancel_from_another_server_names_its_actor_everywhere(supabase_db, postgres,
                                                                 tmp_path):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(stanza("alice", Role.OPERATOR, ALICE) + "\n"
                      + stanza("bob", Role.OPERATOR, BOB))
    runner_env = server_env(supabase_db, OPS_TOKENS_FILE=str(tokens),
                            OPS_DEV_TICK_SECONDS="5")  # it runs until canceled
    api_env = server_env(supabase_db, OPS_TOKENS_FILE=str(tokens))
    with GunicornServer(runner_env) as runner, GunicornServer(api_env) as api:
        alice = LiveAdmin(runner.url, ALICE)
        bob = LiveAdmin(api.url, BOB)
        task_id = alice.create("long")["id"]
        wait_until(lambda: runner.admin.task(task_id)["status"] == "running", timeout=10)

        response = bob.cancel(task_id)
        assert response.status_code == 202, response.text
        assert response.json()["cancel_requested"]

        final = wait_until(lambda: (t := runner.admin.task(task_id))["status"] == "canceled"
                           and t, timeout=10, message="the cancel to reach the runner")
        assert (final["created_by"], final["canceled_by"]) == ("alice", "bob")
        assert final["error"] == "canceled by bob"
        # The other server's copy may lag by one poll interval.
        seen = wait_until(lambda: (t := api.admin.task(task_id))["status"] == "canceled"
                          and t, timeout=5)
        assert seen["canceled_by"] == "bob"
        with postgres.connect(supabase_db.dbname) as conn:
            [(data,)] = conn.execute(
                "SELECT data_json FROM va_task_events WHERE task_id = %s AND kind = "
                "'canceled'", (task_id,)).fetchall()
        assert data == {"reason": "canceled by bob", "canceled_by": "bob"}
        assert stored_kinds(postgres, supabase_db.dbname, task_id) == [
            "created", "status", "canceled"]

        # The creator's list, through the server that did not create it.
        listed = bob.get("/ops/tasks", params={"created_by": "alice"}).json()["tasks"]
        assert [t["id"] for t in listed] == [task_id]
        assert bob.get("/ops/tasks", params={"created_by": "bob"}).json()["tasks"] == []

        # Both calls are in the audit trail, whichever server is asked.
        def calls(server):
            records = audit(server, task_id=task_id)
            return sorted((r["action"], r["actor"], r["outcome"]) for r in records
                          if r["action"] in ("task.create", "task.cancel"))

        expected = [("task.cancel", "bob", "ok"), ("task.create", "alice", "ok")]
        wait_until(lambda: calls(api) == expected, timeout=10,
                   message=lambda: f"the audit records, got {calls(api)}")
        assert calls(runner) == expected
        [created] = audit(runner, actor="alice", action="task.create")
        assert created["task_id"] == task_id and created["detail"]["status"] == 201
        [canceled] = audit(api, actor="bob")
        assert canceled["action"] == "task.cancel" and canceled["task_id"] == task_id
        assert canceled["client"] == "127.0.0.1" and canceled["request_id"]
