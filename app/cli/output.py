"""What the task commands print for a person: a task's events as lines, the task table, the
recipes, the audit trail, a task's notifications. Colour only reaches a terminal (click drops
it from pipes and files) and never when ``NO_COLOR`` is set."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import click

STATUS_COLOURS = {"queued": "bright_black", "running": "cyan", "done": "green",
                  "failed": "red", "canceled": "yellow"}
OUTCOME_COLOURS = {"ok": "green", "denied": "yellow", "rejected": "red", "error": "red"}
DELIVERY_COLOURS = {"pending": "cyan", "delivered": "green", "failed": "red"}
KIND_WIDTH = 8


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(text, err=err, nl=nl, color=False if os.environ.get("NO_COLOR") else None)


def styled_status(status: str, width: int = 0) -> str:
    return click.style(status.ljust(width), fg=STATUS_COLOURS.get(status))


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class EventPrinter:
    """Prints one task's events, in order: its output as the command wrote it (stderr's lines
    on stderr, a model's text as it comes), every other event as one short line on stdout:
    the local time, what happened, its details."""

    def __init__(self) -> None:
        self.started: datetime | None = None
        self.mid_line = False  # streamed text that has not ended its line yet

    def __call__(self, event: dict[str, Any]) -> None:
        kind, data = event["kind"], event.get("data") or {}
        if kind == "text":
            text = str(data.get("text", ""))
            echo(text, nl=False)
            self.mid_line = (self.mid_line and not text) or (bool(text) and text[-1] != "\n")
            return
        self._end_text()
        if kind == "log":
            # batched {"stream", "first_line", "lines"}, or one {"stream", "line"}
            lines = data["lines"] if "lines" in data else [data.get("line", "")]
            for line in lines:
                echo(str(line), err=data.get("stream") == "stderr")
            return
        at = parse_time(event.get("created_at"))
        label, details = self._describe(kind, data, at)
        clock = at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"
        colour = STATUS_COLOURS.get(label)
        label = click.style(label.ljust(KIND_WIDTH) if details else label, fg=colour,
                            bold=colour is not None)
        echo(f"{click.style(clock, dim=True)} {label} {details}".rstrip())

    def _end_text(self) -> None:
        if self.mid_line:
            echo()
            self.mid_line = False

    def _describe(self, kind: str, data: dict[str, Any], at: datetime | None) -> tuple[str, str]:
        """The label (the event's kind, or the status it reports) and the details."""
        if kind == "created":
            return kind, _created(data)
        if kind == "status":
            status = str(data.get("status", "?"))
            if status == "running":
                self.started = at
            return status, ""
        if kind in ("done", "failed", "canceled"):
            reason = "" if kind == "done" else str(data.get("reason") or "")
            parts = [reason, *_result(data, reason)]
            if self.started and at:
                parts.append(f"after {_duration((at - self.started).total_seconds())}")
            return kind, " · ".join(p for p in parts if p)
        if kind == "waiting":
            waits_for = data.get("waiting_for")
            group = data.get("concurrency_group", "?")
            return kind, (f"for task {waits_for} to give back group {group}"
                          if waits_for is not None else f"no more: it holds group {group}")
        if kind == "log_cut":
            after, lines = data.get("after_line", 0), data.get("lines_left_out", 0)
            return kind, (f"[… {lines:,} lines ({data.get('bytes_left_out', 0):,} bytes) left "
                          f"out: lines {after + 1:,} to {after + lines:,} …]")
        if kind == "log_skipped":
            return kind, (f"[… {data.get('lines', 0):,} lines ({data.get('bytes', 0):,} bytes) "
                          f"skipped: {data.get('reason', '')} …]")
        if "message" in data:  # log_limit, log_held: their message says it
            return kind, str(data["message"])
        return kind, _pairs(data)


def _created(data: dict[str, Any]) -> str:
    runner = data.get("runner") or "-"
    parts = [f"runner {runner}"]
    if data.get("recipe"):
        params = " ".join(f"{k}={v}" for k, v in (data.get("params") or {}).items())
        parts.append(f"recipe {data['recipe']} {params}".rstrip())
    if data.get("concurrency_group"):
        parts.append(f"group {data['concurrency_group']}")
    if data.get("model"):
        parts.append(f"model {data['model']}")
    return " · ".join(parts)


def _result(data: dict[str, Any], reason: str) -> list[str]:
    """A terminal event's figures, in words; the text a model wrote was printed already."""
    parts = []
    if "exit_code" in data and f"exit code {data['exit_code']}" not in reason:
        parts.append(f"exit code {data['exit_code']}")
    log = data.get("log")
    if isinstance(log, dict) and "lines" in log:
        parts.append(f"{log['lines']:,} output lines")
    parts.append(_pairs({k: v for k, v in data.items()
                         if k not in ("reason", "exit_code", "log", "text", "usage")}))
    return parts


def _pairs(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (dict, list)))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def ago(moment: datetime | None, now: datetime) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; the date past a month."""
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            if unit == "d" and seconds >= 30 * 86_400:
                return moment.astimezone().strftime("%Y-%m-%d")
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def task_table(tasks: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """A header row and one aligned row per task (``CREATED BY`` reads as two columns: when
    and who); the title last, whole."""
    now = now or datetime.now(timezone.utc)
    rows = []
    for task in tasks:
        started, finished = parse_time(task.get("started_at")), parse_time(task.get("finished_at"))
        took = _duration(((finished or now) - started).total_seconds()) if started else "-"
        status = task["status"] + (" (canceling)" if task.get("cancel_requested")
                                   and task["status"] == "running" else "")
        rows.append([str(task["id"]), status, task.get("runner") or "-",
                     ago(parse_time(task["created_at"]), now), task.get("created_by") or "-",
                     took, task["title"]])
    header = ["ID", "STATUS", "RUNNER", "CREATED", "BY", "DURATION", "TITLE"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([header[0].rjust(widths[0]),
                       *(h.ljust(w) for h, w in zip(header[1:-1], widths[1:])), header[-1]])]
    for row in rows:
        status = styled_status(row[1].split()[0]) + row[1][len(row[1].split()[0]):]
        cells = [row[0].rjust(widths[0]), status + " " * (widths[1] - len(row[1])),
                 *(c.ljust(w) for c, w in zip(row[2:-1], widths[2:])), row[-1]]
        lines.append("  ".join(cells))
    return lines


def worker_table(workers: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """A header row and one row per server process; ``*`` marks the one that answered."""
    now = now or datetime.now(timezone.utc)
    rows = [[("* " if w.get("this") else "") + w["host"], str(w["pid"]),
             ",".join(w["pools"]) if w.get("pools") is not None else "*",
             f"{w['running']}/{w['workers']}",
             "live" if w["live"] else ("stopped" if w.get("stopped_at") else "gone"),
             ago(parse_time(w.get("last_seen")), now)] for w in workers]
    header = ["HOST", "PID", "POOLS", "RUNNING", "STATE", "LAST SEEN"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]


def audit_table(records: list[dict[str, Any]]) -> list[str]:
    """A header row and one aligned row per audit record: the local time, actor, action,
    task, outcome and client; the details last, whole."""
    rows = []
    for record in records:
        at = parse_time(record.get("at"))
        rows.append([at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-",
                     record.get("actor") or "-", record["action"],
                     str(record["task_id"]) if record.get("task_id") else "-",
                     record["outcome"], record.get("client") or "-",
                     _audit_detail(record.get("detail") or {})])
    header = ["TIME", "ACTOR", "ACTION", "TASK", "OUTCOME", "CLIENT", "DETAIL"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i == 3 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row[:-1], widths))]
        if row is not header:
            cells[4] = click.style(cells[4], fg=OUTCOME_COLOURS.get(row[4]))
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _audit_detail(detail: dict[str, Any]) -> str:
    """``403 this needs the operator role; ...``, ``401 invalid X-Admin-Token (3 times)``."""
    words = str(detail.get("error") or detail.get("reason") or "")
    parts = [str(detail["status"]) if "status" in detail else "", words,
             f"({detail['count']} times)" if detail.get("count", 1) > 1 else "",
             _pairs({k: v for k, v in detail.items()
                     if k not in ("status", "error", "reason", "count")})]
    return " ".join(p for p in parts if p)


def _local(text: str | None) -> str:
    at = parse_time(text)
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def delivery_table(deliveries: list[dict[str, Any]]) -> list[str]:
    """A header row and one aligned row per delivery of a task's notifications: the event,
    status, attempts, when it was delivered (or the next attempt is due, while pending), the
    URL as the server shows it, then the last HTTP status or error, whole."""
    rows = []
    for delivery in deliveries:
        status = delivery["status"]
        when = _local(delivery.get("delivered_at") if status == "delivered"
                      else delivery.get("next_attempt_at") if status == "pending" else None)
        last = delivery.get("last_error") or (str(delivery["last_status"])
                                              if delivery.get("last_status") else "-")
        rows.append([delivery["event"], status, str(delivery["attempts"]), when,
                     delivery["url"], last])
    header = ["EVENT", "STATUS", "ATTEMPTS", "DELIVERED/NEXT", "URL", "LAST"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i == 2 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row[:-1], widths))]
        if row is not header:
            cells[1] = click.style(cells[1], fg=DELIVERY_COLOURS.get(row[1]))
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def recipe_lines(recipes: list[dict[str, Any]]) -> list[str]:
    """Each recipe's name and description, then its parameters, indented, with their
    patterns."""
    width = max((len(r["name"]) for r in recipes), default=0)
    lines = []
    for recipe in recipes:
        lines.append(f"{click.style(recipe['name'].ljust(width), bold=True)}  "
                     f"{recipe.get('description') or ''}".rstrip())
        if recipe.get("concurrency"):
            lines.append(f"{'':{width}}    one at a time per group {recipe['concurrency']} "
                         f"({recipe.get('concurrency_policy') or 'queue'})")
        params = recipe.get("params") or []
        pad = max((len(p["name"]) for p in params), default=0)
        for param in params:
            about = f"{param.get('description') or ''} (matches {param['pattern']})".strip()
            lines.append(f"{'':{width}}    {param['name'].ljust(pad)}  {about}")
    return lines
