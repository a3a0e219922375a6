"""The start-up check: both tables and every column the store uses must answer.

When one is missing, the message names it and says how to apply the migration, in one line
an operator can act on (the server then refuses to start: see ``gunicorn.conf.py``).
"""

from __future__ import annotations

from ..base import StoreUnavailable
from .rest import EVENT_COLUMNS, EVENTS, TASK_COLUMNS, TASKS, SupabaseError, SupabaseRest

MIGRATION = "supabase/migrations/20261128000000_ops_tasks.sql"
HOW_TO_MIGRATE = (f"apply {MIGRATION} (supabase db push, or run it in the SQL editor); "
                  "see docs/supabase.md")
_KEY_REFUSED = ("401", "PGRST301", "PGRST302", "GW401")


def check_schema(rest: SupabaseRest) -> None:
    """Raise StoreUnavailable, saying what is wrong, unless both tables answer in full."""
    for table, columns in ((TASKS, TASK_COLUMNS), (EVENTS, EVENT_COLUMNS)):
        try:
            rest.run(rest.table(table).select(",".join(columns)).limit(1))
        except SupabaseError as error:
            raise StoreUnavailable(_explain(rest, table, columns, error)) from None


def _explain(rest: SupabaseRest, table: str, columns, error: SupabaseError) -> str:
    if error.code in ("PGRST205", "42P01"):
        return f"Supabase has no table public.{table}: {HOW_TO_MIGRATE}"
    if error.code == "42703":
        missing = [c for c in columns if _column_missing(rest, table, c)]
        return (f"Supabase table public.{table} has no column "
                f"{', '.join(missing) or '(unknown)'}: {HOW_TO_MIGRATE}")
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
