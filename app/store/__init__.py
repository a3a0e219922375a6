"""Task stores: one contract (:mod:`.base`), one backend per module (the Supabase one a
package), and :class:`ObservedStore`, the wrapper the app uses."""

from .base import (
    TERMINAL_KINDS,
    TERMINAL_STATUSES,
    Event,
    StoreError,
    StoreUnavailable,
    Task,
    TaskFinished,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    isoformat,
)
from .memory import MemoryStore
from .observed import ObservedStore

__all__ = ["Event", "MemoryStore", "ObservedStore", "StoreError", "StoreUnavailable", "Task",
           "TaskFinished", "TaskNotFound", "TaskStatus", "TaskStore", "TERMINAL_KINDS",
           "TERMINAL_STATUSES", "isoformat", "make_store"]


def make_store(settings) -> TaskStore:
    """The Supabase store when it is configured, else the in-process one."""
    if settings.uses_supabase:
        from .supabase import SupabaseStore
        return SupabaseStore.from_settings(settings)
    return MemoryStore()
