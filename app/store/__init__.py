"""Task stores: one contract (:mod:`.base`), one backend per module (the Supabase one a
package), and :class:`ObservedStore`, the wrapper the app uses."""

from . import base
from .base import *  # noqa: F403 (the contract's names: base.__all__)
from .base import TaskStore
from .memory import MemoryStore
from .observed import ObservedStore, TaskObserver

__all__ = [*base.__all__, "MemoryStore", "ObservedStore", "TaskObserver", "make_store"]


def make_store(settings) -> TaskStore:
    """The Supabase store when it is configured, else the in-process one."""
    if settings.uses_supabase:
        from .supabase import SupabaseStore
        return SupabaseStore.from_settings(settings)
    return MemoryStore(max_bytes=settings.memory_max_mb * 1024 * 1024)
