"""The audit trail's HTTP side: what each state-changing call records, and ``/ops/audit``.

A view marked :func:`audited` is recorded once its answer is made, whatever it was (created,
refused for its role, rejected as invalid, failed): its actor, the task (``audit_task``, or
the URL's), the outcome and the HTTP status. Refused credentials anywhere are handed to the
trail's aggregation (:mod:`app.audit.trail`).
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from flask import Blueprint, Flask, g, jsonify, request

from ..audit import AuditQuery
from ..auth.gate import requires
from ..roles import Role
from ..services import services
from .errors import Invalid
from .parsing import MAX_ID, int_arg

bp = Blueprint("audit", __name__, url_prefix="/ops")

MAX_PAGE = 200
MAX_FILTER_LENGTH = 254


def audited(action: str):
    """Record every call of the view as ``action`` (put outside the role check, so that a
    refused call is recorded too)."""
    def decorate(view):
        @functools.wraps(view)  # keeps the view's required_role
        def wrapped(*args, **kwargs):
            g.audit_action = action
            return view(*args, **kwargs)
        wrapped.audit_action = action
        return wrapped
    return decorate


def audit_task(task_id: int) -> None:
    """Name the task the current call's record is about (when the URL does not)."""
    g.audit_task_id = task_id


def init_app(app: Flask) -> None:
    app.after_request(_record)
    app.register_blueprint(bp)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "rejected" if status < 500 else "error"


def _record(response):
    action = g.get("audit_action")
    refused = g.get("auth_refused")
    if action is None and refused is None:
        return response  # most requests (reads, streams): nothing to record
    principal = g.get("principal")
    trail = services().audit
    client = request.remote_addr
    request_id = g.get("request_id")
    if action is not None and (principal is not None or refused is None):
        detail = {"status": response.status_code}
        if response.status_code >= 400 and response.is_json:
            detail["error"] = str((response.get_json(silent=True) or {}).get("error", ""))[:200]
        task_id = g.get("audit_task_id") or (request.view_args or {}).get("task_id")
        trail.record(action, _outcome(response.status_code),
                     actor=principal.name if principal else None, task_id=task_id,
                     client=client, request_id=request_id, detail=detail)
    elif refused is not None:
        reason, actor = refused
        trail.refused(reason, client=client, actor=actor, request_id=request_id,
                      status=response.status_code)
    return response


@bp.get("/audit")
@requires(Role.ADMIN)
def list_audit():
    """Newest first; filters ``actor``, ``action``, ``task_id``, ``since``, ``until``;
    ``limit`` and ``cursor`` (the previous page's next_cursor)."""
    query = AuditQuery(
        limit=int_arg("limit", 50, low=1, high=MAX_PAGE),
        before_id=int_arg("cursor", None, low=1, high=MAX_ID),
        actor=_text_arg("actor"), action=_text_arg("action"),
        task_id=int_arg("task_id", None, low=1, high=MAX_ID),
        since=_time_arg("since"), until=_time_arg("until"))
    records = services().audit.query(query)
    next_cursor = records[-1].id if len(records) == query.limit else None
    return jsonify({"records": [r.to_dict() for r in records], "next_cursor": next_cursor})


def _text_arg(name: str) -> str | None:
    value = request.args.get(name)
    if not value:
        return None
    if len(value) > MAX_FILTER_LENGTH or not value.isprintable():
        raise Invalid(f"{name} must be 1-{MAX_FILTER_LENGTH} printable characters")
    return value


def _time_arg(name: str) -> datetime | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 time such as 2026-12-01T09:00:00Z, "
                      f"got {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
