"""``Idempotency-Key`` across processes over the Supabase store: concurrent creates with one
key from one credential, sent to two gunicorn servers (three worker processes) over the same
``va_idempotency_keys``, make exactly one task."""

from __future__ import annotations

import threading

import pytest
import requests

from app.credential_file import stanza
from app.roles import Role
from tests.support.live import GunicornServer
from tests.test_supabase_live import server_env

pytestmark = [pytest.mark.live, pytest.mark.slow]

ALICE = "ops_alice-token-0123456789abcdefghijklmnop"
BOB = "ops_bob-token-0123456789abcdefghijklmnopqrs"
RACERS = 12


def test_concurrent_creates_with_one_key_make_one_task(supabase_db, postgres, tmp_path):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(stanza("alice", Role.OPERATOR, ALICE) + "\n"
                      + stanza("bob", Role.OPERATOR, BOB))
    env = server_env(supabase_db, OPS_TOKENS_FILE=str(tokens))
    with GunicornServer(env, workers=2) as first, GunicornServer(env) as second:
        servers = [first.url, second.url]
        barrier = threading.Barrier(RACERS)
        answers: list = [None] * RACERS

        def send(n: int) -> None:
            with requests.Session() as session:  # a connection of its own
                barrier.wait(20)
                response = session.post(
                    f"{servers[n % 2]}/ops/tasks", json={"title": "Deploy api"},
                    headers={"X-Admin-Token": ALICE, "Idempotency-Key": "deploy-42"},
                    timeout=30)
                answers[n] = (response.status_code, response.json().get("id"),
                              response.headers.get("Idempotent-Replayed"))

        threads = [threading.Thread(target=send, args=(n,)) for n in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [200] * (RACERS - 1) + [201], answers
        assert len({task_id for _, task_id, _ in answers}) == 1, answers
        assert all(replayed == "true" for status, _, replayed in answers if status == 200)
        [(task_id,)] = {(task_id,) for _, task_id, _ in answers}

        # The other credential's same key is its own: a second task.
        bob = requests.post(f"{second.url}/ops/tasks", json={"title": "Deploy api"},
                            headers={"X-Admin-Token": BOB, "Idempotency-Key": "deploy-42"},
                            timeout=30)
        assert bob.status_code == 201 and bob.json()["id"] != task_id

        with postgres.connect(supabase_db.dbname) as conn:
            assert conn.execute("SELECT count(*) FROM va_tasks").fetchone() == (2,)
            rows = conn.execute("SELECT actor, key, task_id FROM va_idempotency_keys "
                                "ORDER BY actor").fetchall()
        assert rows == [("alice", "deploy-42", task_id), ("bob", "deploy-42", bob.json()["id"])]
