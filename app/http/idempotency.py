"""``Idempotency-Key`` on the calls that create a task (``POST /ops/tasks`` and a relaunch).

A key is 1-255 visible ASCII characters, scoped to the credential that sends it. The first
request with a key claims it, creates its task and records the task under the key; the same
key with the same request (method, path and JSON body: its fingerprint) within the keys'
lifetime gets that task back instead of a second one (200, ``Idempotent-Replayed: true``).
The same key with another request is refused (422). A request that comes while the first is
still under way waits for it (up to ``WAIT_SECONDS``), then replays its task, or is told to
come back (409 with ``Retry-After``). A first request that fails before its task exists
releases the key, so that a retry creates. The keys themselves: :mod:`app.store.idempotency`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import request

from ..services import services
from ..store import StoreUnavailable, Task, TaskNotFound
from .errors import ApiError, Invalid

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY = re.compile(r"[\x21-\x7e]{1,255}")
WAIT_SECONDS = 10.0  # how long a request waits for the first one with its key
RETRY_AFTER = "1"
ROUNDS = 3  # claims tried: a key released (or whose task is gone) is claimed again


class KeyInProgress(ApiError):
    """The first request with this key is still under way (409, with Retry-After)."""

    status = 409
    headers = {"Retry-After": RETRY_AFTER}


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key``, checked (422 naming the header), or None.

    Spaces and tabs around it are not part of it: HTTP servers drop them (gunicorn does), so
    the key is the same however it reaches the app."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    value = value.strip(" \t")
    if not KEY.fullmatch(value):
        raise Invalid(f"{HEADER} must be 1 to 255 visible ASCII characters "
                      "(0x21-0x7E: no space, no control or non-ASCII character)")
    return value


def fingerprint(payload: dict[str, Any]) -> str:
    """SHA-256 of the method, the path and the parsed body as canonical JSON."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = f"{request.method}\n{request.path}\n{canonical}"
    return hashlib.sha256(text.encode()).hexdigest()


def create_once(actor: str, payload: dict[str, Any],
                create: Callable[[], Task]) -> tuple[Task, bool]:
    """``create()`` once per (actor, Idempotency-Key); (the task, whether it is a replay).

    Without the header, ``create()`` runs every time."""
    key = idempotency_key()
    if key is None:
        return create(), False
    keys = services().idempotency
    asked = fingerprint(payload)
    for _ in range(ROUNDS):
        entry = keys.claim(actor, key, asked)
        if entry is None:
            return _create_claimed(actor, key, create), False
        _same_request(entry.fingerprint, asked)
        if entry.pending:
            entry = keys.wait(actor, key, WAIT_SECONDS)
            if entry is None:
                continue  # the first request failed and let the key go: claim it
            _same_request(entry.fingerprint, asked)
            if entry.pending:
                break
        try:
            return services().store.get_task(entry.task_id), True
        except TaskNotFound:  # deleted since (retention): the key made nothing that exists
            keys.release(actor, key, entry.task_id)
    raise KeyInProgress(f"a request with this {HEADER} is still in progress")


def _same_request(stored: str, asked: str) -> None:
    if stored != asked:
        raise Invalid(f"this {HEADER} was used with another request")


def _create_claimed(actor: str, key: str, create: Callable[[], Task]) -> Task:
    keys = services().idempotency
    try:
        task = create()
    except BaseException:
        try:
            keys.release(actor, key)
        except StoreUnavailable as error:  # the claim expires by itself (pending_ttl)
            log.warning("could not release the %s of %s: %s", HEADER, actor, error)
        raise
    try:
        keys.complete(actor, key, task.id)
    except StoreUnavailable as error:  # the task exists: answer it; a retry may wait
        log.warning("task %s: could not record it under the %s of %s: %s", task.id, HEADER,
                    actor, error)
    return task
