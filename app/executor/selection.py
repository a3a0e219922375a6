"""Which runners exist for the configured settings, and which one takes a new task."""

from __future__ import annotations

from typing import Any

from .runner import Runner
from .runners.dev import DevRunner


class NoRunner(Exception):
    """Nothing configured can run this task; the message says what to configure."""


def build_runners(settings) -> dict[str, Runner]:
    """The runners the settings enable, by name."""
    runners: dict[str, Runner] = {}
    if settings.dev_mode:
        runners["dev"] = DevRunner(settings.dev_tick_seconds, settings.dev_ticks)
    return runners


def choose_runner(settings, runners: dict[str, Runner], request: dict[str, Any]) -> str:
    """Name the runner for a task request, or raise NoRunner saying what to configure."""
    if settings.dev_mode:
        return "dev"
    raise NoRunner("no runner is configured: set DEV_LOCAL_LLM=1 for the dev runner")
