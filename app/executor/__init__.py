"""The executor (a bounded worker pool) and the runners it drives."""

from .fleet import Capabilities
from .groups import GroupBusy
from .pool import Executor, QueueFull, ShuttingDown, Unserved
from .runner import RunContext, Runner, TaskFailed, TaskStopped
from .selection import NoRunner, RunnerChoice, TaskRejected, build_runners, choose_runner

__all__ = ["Capabilities", "Executor", "GroupBusy", "NoRunner", "QueueFull", "RunContext",
           "Runner", "RunnerChoice", "ShuttingDown", "TaskFailed", "TaskRejected", "TaskStopped",
           "Unserved", "build_runners", "choose_runner"]
