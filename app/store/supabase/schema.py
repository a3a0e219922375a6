"""The start-up check: every table and every column the service uses must answer.

When one is missing, the message names it and the migration that creates it, in one line
an operator can act on (the server then refuses to start: see ``gunicorn.conf.py``).
"""

from __future__ import annotations

from ..base import StoreUnavailable
from .rest import (
    AUDIT,
    AUDIT_COLUMNS,
    CANCEL_COLUMNS,
    CANCELS,
    EVENT_COLUMNS,
    EVENTS,
    IDEMPOTENCY,
    IDEMPOTENCY_COLUMNS,
    LOCK_COLUMNS,
    LOCKS,
    NOTIFICATION_COLUMNS,
    NOTIFICATIONS,
    TASK_COLUMNS,
    TASKS,
    WORKER_COLUMNS,
    WORKERS,
    SupabaseError,
    SupabaseRest,
)

TASKS_MIGRATION = "supabase/migrations/20261128000000_ops_tasks.sql"
AUDIT_MIGRATION = "supabase/migrations/20261202000000_ops_audit.sql"
IDEMPOTENCY_MIGRATION = "supabase/migrations/20261202010000_ops_idempotency.sql"
GROUPS_MIGRATION = "supabase/migrations/20261202020000_ops_concurrency.sql"
NOTIFICATIONS_MIGRATION = "supabase/migrations/20261202030000_ops_notifications.sql"
WORKERS_MIGRATION = "supabase/migrations/20261203000000_ops_workers.sql"
# Each table, its columns, and the migration that creates it (in the order to apply them).
TABLES = ((TASKS, TASK_COLUMNS, TASKS_MIGRATION), (EVENTS, EVENT_COLUMNS, TASKS_MIGRATION),
          (CANCELS, CANCEL_COLUMNS, AUDIT_MIGRATION), (AUDIT, AUDIT_COLUMNS, AUDIT_MIGRATION),
          (IDEMPOTENCY, IDEMPOTENCY_COLUMNS, IDEMPOTENCY_MIGRATION),
          (LOCKS, LOCK_COLUMNS, GROUPS_MIGRATION),
          (NOTIFICATIONS, NOTIFICATION_COLUMNS, NOTIFICATIONS_MIGRATION),
          (WORKERS, WORKER_COLUMNS, WORKERS_MIGRATION))
_KEY_REFUSED = ("401", "PGRST301", "PGRST302", "GW401")


def how_to_migrate(migration: str) -> str:
    return (f"apply {migration} (supabase db push, or run it in the SQL editor); "
            "see docs/supabase.md")


def check_schema(rest: SupabaseRest) -> None:
    """Raise StoreUnavailable, saying what is wrong, unless every table answers in full."""
    for table, columns, migration in TABLES:
        try:
            rest.run(rest.table(table).select(",".join(columns)).limit(1))
        except SupabaseError as error:
            raise StoreUnavailable(_explain(rest, table, columns, migration, error)) from None


def _explain(rest: SupabaseRest, table: str, columns, migration: str,
             error: SupabaseError) -> str:
    if error.code in ("PGRST205", "42P01"):
        return f"Supabase has no table public.{table}: {how_to_migrate(migration)}"
    if error.code == "42703":
        missing = [c for c in columns if _column_missing(rest, table, c)]
        return (f"Supabase table public.{table} has no column "
                f"{', '.join(missing) or '(unknown)'}: {how_to_migrate(migration)}")
    if error.code in _KEY_REFUSED or "API key" in str(error):
        return ("Supabase refused SUPABASE_SERVICE_ROLE_KEY: use the project's service_role "
                f"key ({error})")
    return f"Supabase does not answer for table public.{table}: {error}"


def _column_missing(rest: SupabaseRest, table: str, column: str) -> bool:
    try:
        rest.run(rest.table(table).select(column).limit(1))
    except SupabaseError as error:
        return error.code == "42703"
    return False
