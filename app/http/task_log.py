"""``/ops/tasks/<id>/log``: a task's output as plain text, for curl and CI scripts."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from ..auth.gate import stream_access_required
from ..services import services
from ..store import StoreUnavailable
from ..stream.text import PAGE_EVENTS, event_pages, log_text
from .errors import Invalid
from .parsing import int_arg

bp = Blueprint("task_log", __name__, url_prefix="/ops")
log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")


@bp.get("/tasks/<task_id:task_id>/log")
@stream_access_required
def task_log(task_id: int, signed_in: bool):
    """The output so far, both streams (or ``?stream=``), from ``?since_line=`` on.

    Any credential of the gate reads it alike (``signed_in`` matters to streams only)."""
    stream = request.args.get("stream") or None
    if stream is not None and stream not in STREAMS:
        raise Invalid(f"stream must be stdout or stderr, got {stream[:40]!r}")
    since_line = int_arg("since_line", 1, low=1, high=2**63 - 1)
    store = services().store
    task = store.get_task(task_id)  # 404 before anything is sent
    # Read before answering: a failing store gets a 503, not half a body.
    first = store.events_after(task_id, 0, PAGE_EVENTS)
    body = _guarded(log_text(event_pages(store, task_id, first), stream, since_line), task_id)
    return Response(body, mimetype="text/plain",
                    headers={"Cache-Control": "no-cache", "X-Task-Status": task.status.value})


def _guarded(chunks, task_id: int):
    """The body; a store failure after it started can only end it early (and is logged)."""
    try:
        yield from chunks
    except StoreUnavailable as error:
        log.warning("task %s: its log was cut short: %s", task_id, error)
