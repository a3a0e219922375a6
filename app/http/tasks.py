"""``/ops/tasks``: create, relaunch, list, show and cancel tasks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..auth.gate import check_role, current_principal, requires
from ..executor import choose_runner
from ..roles import Role
from ..services import services
from ..store import Task, TaskStatus, isoformat
from .audit import audit_task, audited
from .errors import ApiError, Invalid
from .idempotency import REPLAYED, create_once
from .parsing import int_arg, json_object, text_field

bp = Blueprint("tasks", __name__, url_prefix="/ops")

MAX_PAGE = 200
MAX_ACTOR_LENGTH = 254
TASK_FIELDS = {"title", "body", "recipe", "params"}
RELAUNCH_FIELDS = {"title", "params"}


@bp.post("/tasks")
@audited("task.create")
@requires(Role.OPERATOR)
def create_task():
    """Queue a task; 201 with its id, status and a stream token for EventSource.

    ``recipe`` and ``params`` name a command recipe; they are checked before anything starts,
    and a recipe that requires a role is refused (403) to whoever lacks it. A recipe whose
    concurrency group is busy and whose policy is ``reject`` is refused (409). With an
    ``Idempotency-Key`` a repeated request gets the first one's task (200)."""
    principal = current_principal()
    payload = json_object(TASK_FIELDS)
    task, replayed = create_once(principal.name, payload, lambda: _create(payload, principal))
    return task_answer(task, replayed)


def _create(payload: dict[str, Any], principal) -> Task:
    settings = services().settings
    title = text_field(payload, "title", max_length=settings.max_title_length, required=True,
                       multiline=False)
    body = text_field(payload, "body", max_length=settings.max_body_length, required=False,
                      multiline=True)
    return _submit(title, body, payload, principal)


def _submit(title: str, body: str | None, work: dict[str, Any], principal,
            **extra: Any) -> Task:
    """Choose the runner for ``work`` (its recipe and params), check the recipe's role, and
    queue the task; ``extra`` joins what its ``created`` event records."""
    state = services()
    choice = choose_runner(state.settings, state.executor.runners, work)
    if choice.recipe is not None and choice.recipe.role is not None:
        check_role(principal, choice.recipe.role, f"the recipe {choice.recipe.name!r}")
    return state.executor.submit(title, body, choice.runner, {**choice.extra, **extra},
                                 created_by=principal.name,
                                 concurrency_policy=choice.concurrency_policy)


@bp.post("/tasks/<task_id:task_id>/relaunch")
@audited("task.relaunch")
@requires(Role.OPERATOR)
def relaunch_task(task_id: int):
    """Queue a new task as the finished task ``task_id`` was (title, notes, recipe, params),
    with ``title`` and ``params`` (by name) overridden by the body when given; 201 as a
    create, the new task naming ``relaunched_from``. 409 while the task is queued or
    running."""
    principal = current_principal()
    payload = json_object(RELAUNCH_FIELDS, optional=True)
    task, replayed = create_once(principal.name, payload,
                                 lambda: _relaunch(task_id, payload, principal))
    return task_answer(task, replayed)


def _relaunch(task_id: int, payload: dict[str, Any], principal) -> Task:
    source = services().store.get_task(task_id)
    if not source.status.is_terminal:
        error = ApiError(f"task {task_id} is still running: cancel it or wait for it to end",
                         409)
        error.extra["status"] = source.status.value  # as a cancel's 409 says how it ended
        raise error
    title = source.title
    if payload.get("title") is not None:
        title = text_field(payload, "title", max_length=services().settings.max_title_length,
                           required=True, multiline=False)
    work: dict[str, Any] = {}
    if source.extra.get("recipe") is not None:
        work = {"recipe": source.extra["recipe"], "params": source.extra.get("params")}
    params = payload.get("params")
    if params is not None:  # by name over the source's; anything else is checked as sent
        base = work.get("params")
        work["params"] = ({**base, **params} if isinstance(params, dict)
                          and isinstance(base, dict) else params)
    return _submit(title, source.body, work, principal, relaunched_from=source.id)


def task_answer(task: Task, replayed: bool = False):
    """A created task's answer: 201 with Location, its stream's URL and a stream token; a
    replay (Idempotency-Key) is 200 with ``Idempotent-Replayed: true``."""
    state = services()
    audit_task(task.id)
    token, expires_at = state.tokens.mint(task.id)
    location = task_path(task.id)
    answer = {**state.executor.waiting_for(task).to_dict(), "stream_url": f"{location}/stream",
              "stream_token": token, "stream_token_expires_at": isoformat(expires_at)}
    response = jsonify(answer)
    response.status_code = 200 if replayed else 201
    response.headers["Location"] = location
    if replayed:
        response.headers[REPLAYED] = "true"
    return response


def task_path(task_id: int) -> str:
    """``url_for("tasks.get_task", ...)``, the stream's URL being this plus ``/stream``
    (tests/test_tasks_api.py checks both against the URL map). Written out because building
    URLs through the map was a measurable part of a create (docs/performance.md)."""
    return f"{request.script_root}{bp.url_prefix}/tasks/{task_id}"


@bp.get("/tasks")
@requires(Role.VIEWER)
def list_tasks():
    """Newest first; ``limit``, ``status``, ``created_by`` and ``cursor`` (the previous
    page's next_cursor)."""
    limit = int_arg("limit", 50, low=1, high=MAX_PAGE)
    cursor = int_arg("cursor", None, low=1, high=2**63 - 1)
    status = request.args.get("status")
    if status:
        try:
            status = TaskStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in TaskStatus)
            raise Invalid(f"status must be one of {choices}, got {status[:40]!r}") from None
    created_by = actor_arg("created_by")
    tasks = services().store.list_tasks(limit, status or None, cursor, created_by)
    next_cursor = tasks[-1].id if len(tasks) == limit else None
    explain = services().executor.waiting_for
    return jsonify({"tasks": [explain(t).to_dict() for t in tasks],
                    "next_cursor": next_cursor})


def actor_arg(name: str) -> str | None:
    """A query parameter naming an actor (a credential's name or a proxy user)."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_ACTOR_LENGTH or not value.isprintable():
        raise Invalid(f"{name} must be 1-{MAX_ACTOR_LENGTH} printable characters")
    return value


@bp.get("/tasks/<task_id:task_id>")
@requires(Role.VIEWER)
def get_task(task_id: int):
    state = services()
    return jsonify(state.executor.waiting_for(state.store.get_task(task_id)).to_dict())


@bp.post("/tasks/<task_id:task_id>/cancel")
@audited("task.cancel")
@requires(Role.OPERATOR)
def cancel_task(task_id: int):
    """Best effort: a queued task ends at once, a running one at its next checkpoint."""
    task = services().executor.cancel(task_id, actor=current_principal().name)
    response = jsonify(task.to_dict())
    response.status_code = 202 if not task.status.is_terminal else 200
    return response


@bp.get("/stats")
@requires(Role.ADMIN)
def stats():
    """What this process is doing: its workers, queue and open streams."""
    current = services()
    return jsonify({**current.executor.stats(), "streams_open": current.streams.open,
                    "store": current.store.backend_name})
