"""The Supabase backend: tasks in ``va_tasks``, events in ``va_task_events``, who asked to
cancel a running task in ``va_task_cancels``, shared by every process (``docs/supabase.md``).

``store`` is the :class:`~app.store.base.TaskStore`; ``rest`` the client and its errors;
``writer`` the single writer of a task's events and its outbox; ``pollers`` the one poller
per task that streams wait on; ``leases`` lease renewal and the orphan sweep; ``schema`` the
start-up check.
"""

from .pollers import PollerHub
from .rest import SupabaseError, SupabaseRest
from .store import SupabaseStore

__all__ = ["PollerHub", "SupabaseError", "SupabaseRest", "SupabaseStore"]
