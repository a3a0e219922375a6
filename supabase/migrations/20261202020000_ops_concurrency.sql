-- Ops Orchestrator: concurrency groups (one deploy at a time). Needs
-- 20261128000000_ops_tasks.sql first; va_tasks and va_task_events keep exactly their
-- columns. Safe to run again: every statement is idempotent.

-- Who holds each concurrency group: one row per held group. A task takes the lock with
-- INSERT ... ON CONFLICT (group_name) DO NOTHING and gives it back with a DELETE naming both
-- the group and the task. A row whose task has ended (its process died and the orphan sweep
-- ended it failed) is stale: any process deletes it, with the same conditional DELETE, and
-- takes the lock. Deleting a task (retention) deletes its lock.
create table if not exists public.va_concurrency_locks (
  group_name  text primary key,
  task_id     bigint not null references public.va_tasks (id) on delete cascade,
  acquired_at timestamptz not null default now()
);

-- The task's side of the foreign key: deleting tasks finds their locks without a scan.
create index if not exists va_concurrency_locks_task_id_idx
  on public.va_concurrency_locks (task_id);

-- "Queued tasks of group G" (the tasks waiting for a group, in creation order): the group is
-- in the data of each task's 'created' event.
create index if not exists va_task_events_concurrency_group_idx
  on public.va_task_events ((data_json ->> 'concurrency_group'), task_id)
  where kind = 'created';

-- Only the service role (which bypasses row-level security) reads and writes this table.
alter table public.va_concurrency_locks enable row level security;
