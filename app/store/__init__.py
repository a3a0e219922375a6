"""Task stores: one contract (:mod:`.base`), one backend per module."""

from .base import (Event, Task, TaskFinished, TaskNotFound, TaskStatus, TaskStore, StoreError,
                   StoreUnavailable, TERMINAL_KINDS, TERMINAL_STATUSES, isoformat)
from .memory import MemoryStore

__all__ = ["Event", "MemoryStore", "StoreError", "StoreUnavailable", "Task", "TaskFinished",
           "TaskNotFound", "TaskStatus", "TaskStore", "TERMINAL_KINDS", "TERMINAL_STATUSES",
           "isoformat", "make_store"]


def make_store(settings) -> TaskStore:
    """The Supabase store when it is configured, else the in-process one."""
    if settings.uses_supabase:
        from .supabase import SupabaseStore
        return SupabaseStore.from_settings(settings)
    return MemoryStore()
