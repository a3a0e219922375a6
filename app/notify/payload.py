"""What a notification says: the task's summary (JSON), or a Slack message; how it is signed;
and a URL as viewers may see it.

The summary is built from the store when the delivery is made, never from the task's
process: its title, status, times, who created and canceled it, its error and the last
:data:`TAIL_LINES` lines of its output. Every string in it passes through the redactor,
which knows the service's secrets (and a recipe's environment values), so that a command
printing one does not send it away.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..logs import MIN_LITERAL_SECRET, REDACTED, Redactor
from ..store import Task, TaskStatus, TaskStore, isoformat
from ..stream.text import event_pages

TAIL_LINES = 20
STARTED, ENDED = "task.started", "task.ended"
SIGNATURE_HEADER = "X-Ops-Signature-256"
SLACK_ICONS = {"done": ":white_check_mark:", "failed": ":x:", "canceled": ":no_entry_sign:",
               "running": ":arrow_forward:"}


def secrets_of(settings) -> tuple[str, ...]:
    """The service's own secrets, each as it would appear in text."""
    values = [settings.admin_token, *settings.stream_secrets, settings.notify_secret,
              settings.supabase_key, settings.llm_api_key, settings.metrics_token]
    return tuple(v for v in values if v and len(v) >= MIN_LITERAL_SECRET)


def redactor_for(secrets: tuple[str, ...], extra: tuple[str, ...] = ()) -> Redactor:
    return Redactor(secrets + tuple(v for v in extra if len(v) >= MIN_LITERAL_SECRET))


def summary(event: str, task: Task, tail: list[str], public_url: str | None,
            redact: Callable[[str], str]) -> dict[str, Any]:
    """The JSON summary of docs/notifications.md, every string redacted."""
    started, finished = task.started_at, task.finished_at
    duration = (round((finished - started).total_seconds(), 3)
                if event == ENDED and started and finished else None)
    body = {
        "event": event,
        "task": {
            "id": task.id, "title": task.title, "status": task.status.value,
            "runner": task.runner, "recipe": task.extra.get("recipe"),
            "params": task.extra.get("params"), "created_by": task.created_by,
            "canceled_by": task.canceled_by, "error": task.error,
            "created_at": isoformat(task.created_at), "started_at": isoformat(started),
            "finished_at": isoformat(finished),
        },
        "duration_seconds": duration,
        "log_tail": tail,
    }
    body = _redacted(body, redact)
    if public_url:
        body["url"] = task_link(public_url, task.id)
    return body


def task_link(public_url: str, task_id: int) -> str:
    """The dashboard's page of the task (its route is the URL's hash: app/ui/static/main.js)."""
    return f"{public_url}/ops/ui#/tasks/{task_id}"


def slack_message(body: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message from a summary: one line of text."""
    task = body["task"]
    status = task["status"]
    words = [f"{SLACK_ICONS.get(status, '')} Task #{task['id']} *{status}*:",
             _slack_escape(task["title"])]
    if task.get("created_by"):
        words.append(f"— by {_slack_escape(task['created_by'])}")
    if task.get("canceled_by"):
        words.append(f"(canceled by {_slack_escape(task['canceled_by'])})")
    elif status == TaskStatus.FAILED and task.get("error"):
        words.append(f"({_slack_escape(str(task['error'])[:200])})")
    if body.get("duration_seconds") is not None:
        words.append(f"in {body['duration_seconds']:.1f}s")
    if body.get("url"):
        words.append(f"<{body['url']}|open>")
    return {"text": " ".join(w for w in words if w).strip()}


def encode(body: dict[str, Any], fmt: str) -> bytes:
    """The exact bytes sent (and signed)."""
    message = slack_message(body) if fmt == "slack" else body
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``, as GitHub signs its webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def log_tail(store: TaskStore, task_id: int, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the task's output (both streams, in order)."""
    tail: collections.deque[str] = collections.deque(maxlen=lines)
    for page in event_pages(store, task_id):
        for event in page:
            if event.kind == "log":
                tail.extend(str(line) for line in event.data.get("lines") or [])
    return list(tail)


def shown_url(url: str, fmt: str = "json") -> str:
    """The URL as ``GET /ops/tasks/{id}/notifications`` shows it: no userinfo, no query
    values, and for Slack no path (a Slack webhook's path is its secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    if parts.username is not None or parts.password is not None:
        host = f"{REDACTED}@{host}"
    path = parts.path
    if fmt == "slack" and path not in ("", "/"):
        path = f"/{REDACTED}"
    query = "&".join(f"{name}={REDACTED}"
                     for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{host}{path}" + (f"?{query}" if query else "")


def minimal_task(task_id: int, status: TaskStatus, data: dict[str, Any],
                 finished_at: datetime | None) -> Task:
    """What is known of a task the store no longer has (evicted, purged)."""
    return Task(id=task_id, title="", status=status,
                created_at=finished_at or datetime.now(timezone.utc),
                finished_at=finished_at, error=data.get("reason"),
                canceled_by=data.get("canceled_by"))


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
