-- Ops Orchestrator: the server processes that share the task queue. Needs
-- 20261128000000_ops_tasks.sql first; va_tasks and va_task_events keep exactly their
-- columns. Safe to run again: every statement is idempotent.

-- One row per server process, written when it starts and renewed every lease interval: what
-- it can run (its runners, its recipes, the pools it serves; pools null: every pool), how
-- many tasks it runs at once and runs now. A process that stops marks stopped_at; a process
-- that died just stops being seen. Rows unseen for a day are deleted by any process.
create table if not exists public.va_workers (
  id         text primary key,            -- host:pid:random, new at every start
  host       text not null,
  pid        integer not null,
  pools      jsonb,
  runners    jsonb not null default '[]'::jsonb,
  recipes    jsonb,                       -- null: any recipe its recipe runner has
  workers    integer not null,
  running    integer not null default 0,
  started_at timestamptz not null default now(),
  last_seen  timestamptz not null default now(),
  stopped_at timestamptz
);

-- last_seen is the database's clock at every renewal, whatever the writer's clock says.
create or replace function public.va_workers_seen() returns trigger
language plpgsql as $$
begin
  new.last_seen := now();
  return new;
end
$$;

drop trigger if exists va_workers_seen on public.va_workers;
create trigger va_workers_seen before update on public.va_workers
  for each row execute function public.va_workers_seen();

-- The shared queue's claim: "the oldest queued tasks" without reading the others.
create index if not exists va_tasks_queued_idx
  on public.va_tasks (id)
  where status = 'queued';

-- Only the service role (which bypasses row-level security) reads and writes this table.
alter table public.va_workers enable row level security;
