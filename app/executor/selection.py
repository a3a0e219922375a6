"""Which runners exist for the configured settings, and which one takes a new task.

Dev mode (``DEV_LOCAL_LLM=1``) runs the dev runner for every task. Otherwise a task that
names a ``recipe`` runs that recipe, and one that does not goes to the LLM runner when a
model server is configured. A request nothing can run is refused before a task exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import group_records
from ..recipes import Recipe, RecipeError
from .runner import Runner
from .runners.dev import DevRunner
from .runners.llm import LLMRunner
from .runners.output import LogLimits
from .runners.recipe import RecipeRunner


class NoRunner(Exception):
    """Nothing configured can run this task; the message says what to configure (503)."""


class TaskRejected(Exception):
    """The request names work this server cannot do as asked (422); the message says why."""


@dataclasses.dataclass(frozen=True)
class RunnerChoice:
    """The runner for a new task, and what its ``created`` event records about the work."""

    runner: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: Recipe | None = None  # the recipe it runs, when it names one

    @property
    def concurrency_policy(self) -> str:
        """What a new task does when its concurrency group is busy (recipes.POLICIES)."""
        return self.recipe.concurrency_policy if self.recipe is not None else "queue"


def build_runners(settings) -> dict[str, Runner]:
    """The runners the settings enable, by name."""
    runners: dict[str, Runner] = {}
    if settings.dev_mode:
        runners["dev"] = DevRunner(settings.dev_tick_seconds, settings.dev_ticks)
    if settings.recipes is not None:
        runners["recipe"] = RecipeRunner(
            settings.recipes, kill_grace=settings.recipe_kill_grace,
            user=settings.recipe_user, records=group_records.installed(),
            limits=LogLimits(max_line_bytes=settings.recipe_max_line_bytes,
                             max_bytes=settings.log_max_bytes))
    if settings.uses_llm:
        runners["llm"] = LLMRunner(
            settings.llm_base_url, settings.llm_model, settings.llm_api_key,
            timeout=settings.llm_timeout, batch_seconds=settings.llm_batch_seconds,
            batch_chars=settings.llm_batch_chars)
    return runners


def choose_runner(settings, runners: dict[str, Runner], request: dict[str, Any]) -> RunnerChoice:
    """The runner for a task request; NoRunner or TaskRejected saying what is missing."""
    if request.get("recipe") is not None or request.get("params") is not None:
        recipe, extra = _recipe_extra(settings, request)
        return RunnerChoice("dev" if settings.dev_mode else "recipe", extra, recipe)
    if settings.dev_mode:
        return RunnerChoice("dev")
    if "llm" in runners:
        return RunnerChoice("llm", {"model": settings.llm_model})
    if "recipe" in runners:
        raise TaskRejected(
            'this server runs recipes only: name one in "recipe" (GET /ops/recipes lists '
            "them), or configure OPS_LLM_BASE_URL and OPS_LLM_MODEL for tasks without one")
    raise NoRunner("no runner is configured: set OPS_RECIPES (command recipes), "
                   "OPS_LLM_BASE_URL and OPS_LLM_MODEL (a language model), or DEV_LOCAL_LLM=1 "
                   "(the dev runner); see docs/runners.md")


def _recipe_extra(settings, request: dict[str, Any]) -> tuple[Recipe, dict[str, Any]]:
    """Check the recipe and its parameters now, so that a bad request starts nothing."""
    if request.get("recipe") is None:
        raise TaskRejected('params needs a "recipe" to go with')
    if settings.recipes is None:
        raise NoRunner("recipes are not configured: set OPS_RECIPES to a recipe file "
                       "(see docs/runners.md)")
    try:
        recipe = settings.recipes.get(request["recipe"])
        params = recipe.bind(request.get("params"))
    except RecipeError as error:
        raise TaskRejected(str(error)) from None
    extra: dict[str, Any] = {"recipe": recipe.name, "params": params}
    group = recipe.group(params)
    if group is not None:
        extra["concurrency_group"] = group
    if recipe.pool != "default":
        extra["pool"] = recipe.pool
    return recipe, extra
