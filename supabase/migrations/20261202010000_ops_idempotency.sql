-- Ops Orchestrator: Idempotency-Key entries, so that a create (or relaunch) sent again
-- returns the task the first one made. Needs 20261128000000_ops_tasks.sql first; va_tasks
-- and va_task_events keep exactly their columns. Safe to run again: every statement is
-- idempotent.

-- One entry per (actor, key): the actor is the credential's name (or the proxy's user).
-- The service claims a key with INSERT ... ON CONFLICT DO NOTHING before it creates the
-- task, sets task_id once the task exists, and deletes the entry if the request fails
-- first. task_id is null while the first request is under way. created_at is the claim's
-- time, sent by the service: entries older than 24 hours are forgotten (an expired entry
-- is deleted, on a condition of its age, before the key is claimed again). Deleting a task
-- (retention) deletes its entries.
create table if not exists public.va_idempotency_keys (
  actor       text not null,
  key         text not null,
  fingerprint text not null,
  task_id     bigint references public.va_tasks (id) on delete cascade,
  created_at  timestamptz not null default now(),
  primary key (actor, key)
);

-- The expiry sweep (oldest first) and the cascade from va_tasks.
create index if not exists va_idempotency_keys_created_at_idx
  on public.va_idempotency_keys (created_at);
create index if not exists va_idempotency_keys_task_id_idx
  on public.va_idempotency_keys (task_id) where task_id is not null;

-- Only the service role (which bypasses row-level security) reads and writes this table.
alter table public.va_idempotency_keys enable row level security;
