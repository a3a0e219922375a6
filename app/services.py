"""The service objects one app owns, kept in ``app.extensions["services"]``."""

from __future__ import annotations

import dataclasses

from flask import Flask, current_app

from .audit import AuditTrail
from .auth import StreamTokens
from .config import Settings
from .executor import Executor
from .notify import Notifier
from .store import TaskStore
from .store.idempotency import IdempotencyKeys
from .store.retention import RetentionSweeper
from .stream import StreamTracker

EXTENSION = "services"


@dataclasses.dataclass
class Services:
    settings: Settings
    store: TaskStore
    executor: Executor
    tokens: StreamTokens
    streams: StreamTracker
    audit: AuditTrail
    idempotency: IdempotencyKeys
    notifier: Notifier
    retention: RetentionSweeper | None = None


def services(app: Flask | None = None) -> Services:
    """The service objects of ``app`` (default: the current app)."""
    return (app or current_app).extensions[EXTENSION]
