"""The recipe runner: runs an admin-declared command and streams its output as ``log`` events.

The task's ``extra`` names the recipe and its parameters (checked again here). The command
runs in its own process group with a minimal environment, as the recipe user when the
service runs as root; its output lines go out in batched ``log`` events (:mod:`.output`). It ends:

- ``done`` with ``{"exit_code": 0}`` when the command succeeds;
- ``failed`` with ``"exit code N"`` (or ``"killed by SIGSEGV"``) when it does not;
- ``failed`` with reason ``timeout`` after the recipe's ``timeout``;
- ``canceled`` (or ``failed``: task timeout, shutdown) when the executor stops the task.

Stopping means SIGTERM to the whole group, then SIGKILL after the grace period; the terminal
event's ``stopped_with`` says which signal ended it. Processes the command leaves behind
after it exits are stopped the same way (``stopped_leftovers``).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from ...group_records import GroupRecords
from ...isolation import RecipeUser
from ...recipes import RecipeBook, RecipeError
from ..runner import RunContext, TaskFailed, TaskStopped
from .output import LogLimits, OutputLog
from .process import Child, stop_group

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Two pipes at the largest size an unprivileged process can give one (pipe-max-size).
DRAIN_BYTES = 2 * 1024 * 1024


def child_environment(additions: tuple[tuple[str, str], ...] = (),
                      user: RecipeUser | None = None) -> dict[str, str]:
    """A clean environment: PATH, HOME and LANG of the service, then the recipe's additions.

    HOME is the recipe user's own, when there is one. Nothing else of the service's
    environment (its secrets above all) reaches the command."""
    home = user.home if user else os.environ.get("HOME")
    env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH,
           "HOME": home or "/",
           "LANG": os.environ.get("LANG") or "C.UTF-8",
           # Python children would otherwise hold their output until they exit.
           "PYTHONUNBUFFERED": "1"}
    env.update(additions)
    return env


class RecipeRunner:
    name = "recipe"

    def __init__(self, book: RecipeBook, *, kill_grace: float, limits: LogLimits,
                 user: RecipeUser | None = None, records: GroupRecords | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.book = book
        self.kill_grace = kill_grace
        self.limits = limits
        self.user = user  # None: the service's own user
        self.records = records
        self._clock = clock

    def run(self, task, ctx: RunContext) -> dict[str, Any]:
        try:
            recipe = self.book.get(task.extra.get("recipe"))
            argv = recipe.command(task.extra.get("params") or {})
        except RecipeError as error:  # the recipe file changed since the task was created
            raise TaskFailed(f"cannot run: {error}") from None
        grace = recipe.kill_grace or self.kill_grace
        output = OutputLog(ctx.emit_many, self.limits, self._clock)
        ctx.checkpoint()
        try:
            child = Child(argv, cwd=recipe.cwd, env=child_environment(recipe.env, self.user),
                          user=self.user, records=self.records, clock=self._clock)
        except OSError as error:
            raise TaskFailed(f"could not start {argv[0]}: {error.strerror or error}",
                             recipe=recipe.name) from None
        log.info("task %s: recipe %s started as pid %s", task.id, recipe.name, child.pgid)
        try:
            return self._supervise(child, output, ctx, recipe.timeout, grace)
        finally:
            if child.exit_code is None or child.group_alive():
                # Only after an error of our own (the store failed): leave nothing behind.
                child.signal_group(signal.SIGKILL)
                child.process.wait()
            child.close()

    def _supervise(self, child: Child, output: OutputLog, ctx: RunContext,
                   timeout: float | None, grace: float) -> dict[str, Any]:
        deadline = None if timeout is None else self._clock() + timeout

        def should_stop() -> bool:
            if child.exit_code is not None:
                return True  # an exit wins over a stop that arrives at the same moment
            return ctx.stopping.is_set() or (deadline is not None and self._clock() >= deadline)

        child.pump(output, should_stop, wake=ctx.stopping)
        outcome: dict[str, Any] = {}
        stopped_by = None
        if child.exit_code is None:
            stopped_by = "stop" if ctx.stopping.is_set() else "timeout"
            outcome["stopped_with"] = stop_group(child, output, grace)
        elif child.group_alive():
            outcome["stopped_leftovers"] = stop_group(child, output, grace)
        if not _drain(child, output, grace):
            # Something that left the group (setsid) still holds a pipe: stop listening.
            outcome["output_cut"] = True
        code = child.process.wait()
        outcome = {"exit_code": code, **outcome, "log": output.summary()}

        if stopped_by == "stop":
            _stop_with(ctx, outcome)
        if stopped_by == "timeout":
            raise TaskFailed("timeout", timeout=timeout, **outcome)
        if code == 0:
            return outcome
        if code < 0:
            raise TaskFailed(f"killed by {_signal_name(-code)}", **outcome)
        raise TaskFailed(f"exit code {code}", **outcome)


def _drain(child: Child, output: OutputLog, grace: float) -> bool:
    """Read what the pipes still hold until they close (True). Give up (False) after ``grace``
    without a byte, or once more than the pipes can hold came after the exit: a slow store
    may take longer than ``grace`` to take it all, a process that left the group may not end."""
    start = output.fed
    while True:
        before = output.fed
        if child.pump(output, lambda: not child.pipes_open, grace):
            return True
        if output.fed == before or output.fed - start > DRAIN_BYTES:
            return False


def _stop_with(ctx: RunContext, data: dict[str, Any]) -> None:
    """Raise the executor's stop (cancel, task timeout, shutdown) with what it took."""
    try:
        ctx.checkpoint()
    except TaskStopped as stop:
        raise TaskStopped(stop.status, stop.reason, **stop.data, **data) from None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
