"""The service objects one app owns, kept in ``app.extensions["ops"]``."""

from __future__ import annotations

import dataclasses

from flask import current_app

from .auth.stream_tokens import StreamTokens
from .config import Settings
from .executor import Executor
from .retention import RetentionSweeper
from .store import TaskStore
from .stream import StreamTracker


@dataclasses.dataclass
class Ops:
    settings: Settings
    store: TaskStore
    executor: Executor
    tokens: StreamTokens
    streams: StreamTracker
    retention: RetentionSweeper | None = None


def ops() -> Ops:
    """The current app's service objects."""
    return current_app.extensions["ops"]
