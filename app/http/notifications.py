"""``/ops/tasks/<id>/notifications``: where a task's notifications went, and how it went."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..auth.gate import requires
from ..roles import Role
from ..services import services

bp = Blueprint("notifications", __name__, url_prefix="/ops")


@bp.get("/tasks/<task_id:task_id>/notifications")
@requires(Role.VIEWER)
def task_notifications(task_id: int):
    """Each delivery of the task's notifications: its URL (secrets hidden), event, status,
    attempts, last answer or error, and when the next attempt is due or it was delivered."""
    state = services()
    state.store.get_task(task_id)  # 404 for a task that does not exist
    deliveries = state.notifier.records.for_task(task_id)
    return jsonify({"task_id": task_id,
                    "notifications": [d.to_dict() for d in deliveries]})
