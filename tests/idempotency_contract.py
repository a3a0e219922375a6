"""The idempotency keys' contract tests, written once; each backend's test class subclasses
:class:`IdempotencyKeysContract` and provides the fixtures ``make_keys`` (``make_keys(clock)``:
fresh, empty keys on that clock) and ``new_task`` (``new_task()``: the id of a task that
exists)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest


class IdempotencyKeysContract:
    @pytest.fixture
    def keys(self, make_keys, clock):
        """Fresh keys on the test's FakeClock (conftest's ``clock``)."""
        return make_keys(clock)

    def test_a_free_key_is_claimed_and_then_held(self, keys, clock):
        assert keys.claim("alice", "k-1", "fp-a") is None
        held = keys.claim("alice", "k-1", "fp-b")
        assert held.pending and held.task_id is None
        assert held.fingerprint == "fp-a"  # the first request's, whatever the second asks
        assert held.created_at == clock.now()
        assert keys.lookup("alice", "k-1") == held

    def test_complete_records_the_task(self, keys, new_task):
        task_id = new_task()
        keys.claim("alice", "k-1", "fp")
        keys.complete("alice", "k-1", task_id)
        held = keys.claim("alice", "k-1", "fp")
        assert (held.pending, held.task_id, held.fingerprint) == (False, task_id, "fp")

    def test_keys_belong_to_their_actor(self, keys, new_task):
        assert keys.claim("alice", "shared", "fp") is None
        assert keys.claim("bob", "shared", "fp") is None
        keys.complete("alice", "shared", new_task())
        assert keys.lookup("bob", "shared").pending
        assert keys.lookup("carol", "shared") is None

    def test_the_key_is_taken_as_sent(self, keys):
        assert keys.claim("alice", "Key", "fp") is None
        assert keys.claim("alice", "key", "fp") is None  # another key: case matters
        assert keys.claim("alice", "x" * 255, "fp") is None
        assert keys.claim("alice", "a,b\"c'~", "fp") is None
        assert keys.lookup("alice", "a,b\"c'~").fingerprint == "fp"

    def test_release_frees_a_pending_claim_only(self, keys, new_task):
        keys.claim("alice", "failed", "fp")
        keys.release("alice", "failed")
        assert keys.lookup("alice", "failed") is None
        assert keys.claim("alice", "failed", "fp-retry") is None  # a retry may create

        task_id = new_task()
        keys.claim("alice", "done", "fp")
        keys.complete("alice", "done", task_id)
        keys.release("alice", "done")  # not pending: stays
        assert keys.lookup("alice", "done").task_id == task_id
        keys.release("alice", "done", task_id + 1)  # another task: stays
        assert keys.lookup("alice", "done").task_id == task_id
        keys.release("alice", "done", task_id)  # its task is gone: forgotten
        assert keys.lookup("alice", "done") is None
        keys.release("alice", "never-claimed")  # harmless

    def test_an_entry_expires_after_the_ttl_and_the_key_can_be_claimed_again(
            self, keys, clock, new_task):
        first = new_task()
        keys.claim("alice", "k", "fp-1")
        keys.complete("alice", "k", first)
        clock.advance((keys.ttl - timedelta(seconds=1)).total_seconds())
        assert keys.claim("alice", "k", "fp-2").task_id == first  # still within the ttl
        clock.advance(1)
        assert keys.lookup("alice", "k") is None
        assert keys.claim("alice", "k", "fp-2") is None  # forgotten: claimed anew
        held = keys.lookup("alice", "k")
        assert (held.pending, held.fingerprint, held.created_at) == (True, "fp-2", clock.now())

    def test_a_claim_never_completed_is_taken_over_after_the_pending_ttl(self, keys, clock):
        keys.claim("alice", "k", "fp-1")  # its process died before it made the task
        clock.advance(keys.pending_ttl.total_seconds() - 1)
        assert keys.claim("alice", "k", "fp-2").fingerprint == "fp-1"
        clock.advance(1)
        assert keys.claim("alice", "k", "fp-2") is None
        assert keys.lookup("alice", "k").fingerprint == "fp-2"

    def test_concurrent_claims_have_one_winner(self, keys):
        racers = 8
        barrier = threading.Barrier(racers)
        results = [None] * racers

        def race(n: int) -> None:
            barrier.wait(10)
            results[n] = keys.claim("alice", "race", f"fp-{n}")

        threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [n for n, result in enumerate(results) if result is None]
        assert len(winners) == 1, results
        assert {r.fingerprint for r in results if r is not None} == {f"fp-{winners[0]}"}

    def test_wait_returns_the_entry_once_its_task_is_recorded(self, keys, new_task):
        task_id = new_task()
        keys.claim("alice", "k", "fp")
        seen = wait_meanwhile(keys, lambda: keys.complete("alice", "k", task_id))
        assert [(e.task_id, e.fingerprint) for e in seen] == [(task_id, "fp")]

    def test_wait_returns_none_once_the_claim_is_released(self, keys):
        keys.claim("alice", "k", "fp")
        seen = wait_meanwhile(keys, lambda: keys.release("alice", "k"))
        assert seen == [None]

    def test_wait_gives_up_on_a_pending_entry_after_its_timeout(self, keys):
        keys.claim("alice", "k", "fp")
        assert keys.wait("alice", "k", timeout=0.2).pending
        assert keys.wait("alice", "missing", timeout=5) is None  # at once: nothing to wait for

    def test_purge_deletes_expired_entries_only(self, keys, clock, new_task):
        keys.claim("alice", "old", "fp")
        keys.complete("alice", "old", new_task())
        keys.claim("alice", "abandoned", "fp")
        clock.advance(keys.ttl.total_seconds())
        keys.claim("alice", "young", "fp")
        keys.complete("alice", "young", new_task())
        keys.claim("alice", "pending", "fp")
        assert keys.purge(clock.now(), 100) == 2
        assert keys.lookup("alice", "young").task_id is not None
        assert keys.lookup("alice", "pending").pending


def wait_meanwhile(keys, action) -> list:
    """What ``keys.wait("alice", "k")`` returns in another thread while ``action`` runs here
    (once the waiter has started)."""
    started = threading.Barrier(2)
    seen = []

    def waiter() -> None:
        started.wait(10)
        seen.append(keys.wait("alice", "k", timeout=20))

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait(10)
    action()
    thread.join(30)
    return seen
