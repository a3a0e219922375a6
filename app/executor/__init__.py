"""The executor (a bounded worker pool) and the runners it drives."""

from .pool import Executor, QueueFull, ShuttingDown
from .runner import RunContext, Runner, TaskFailed, TaskStopped
from .selection import NoRunner, build_runners, choose_runner

__all__ = ["Executor", "NoRunner", "QueueFull", "RunContext", "Runner", "ShuttingDown",
           "TaskFailed", "TaskStopped", "build_runners", "choose_runner"]
