-- usage_events and ledger_entries, range-partitioned by month (issue #20; the design, and what
-- it costs, is docs/scale.md "History that grows for years").
--
--   usage_events    by occurred_at (what the usage report, the export and invoices select by)
--   ledger_entries  by created_at, which is now its transaction's created_at (the posting time:
--                   the balance trigger in functions/ledger.sql refuses an entry that carries
--                   another), so a transaction's entries sit in one partition, found by a probe
--                   that names it
--
-- Each has a partition per month from partitioned_tables.first_month on, `<table>_before` for
-- anything older (an event dated 1999 is kept there) and `<table>_default` for a month nobody
-- made yet (an event dated 2031, or any month if the partition job stopped): no insert ever
-- fails for want of a partition. The job (partitions_ensure, functions/partitions.sql) makes
-- months ahead of time; it never moves rows out of the default partition.
--
-- Unique keys across partitions: a partitioned table's unique keys must contain its partition
-- key, so (org_id, idempotency_key) of usage events moves to usage_event_keys, unpartitioned,
-- written by a statement trigger on usage_events in the same statement as the events (and
-- functions/metering.sql finds a replay through it). The ids need no unique index of their own:
-- usage ids carry 119 random bits (newId), entry ids and usage seqs come from one identity sequence
-- per table; the primary keys are (id, key column).
--
-- Rows move here, on a live database: writers wait (EXCLUSIVE lock: readers go on) while both
-- tables are copied, then the copies take the names. It is one transaction, like every
-- migration: a failure leaves the old tables as they were. Measured rate: docs/scale.md.

lock table ledger_transactions, ledger_entries, usage_events in exclusive mode;

-- The tables partitioned by month and their first month; partitions_ensure reads it.
create table partitioned_tables (
  table_name text primary key,
  key_column text not null,
  first_month date not null check (first_month = date_trunc('month', first_month))
);

-- From the oldest row's month (or 12 months back, whichever is earlier, so that a young database
-- has monthly partitions for the past year's late events), but no more than 10 years back.
insert into partitioned_tables (table_name, key_column, first_month)
select t.name, t.key_column,
  greatest(
    least(date_trunc('month', coalesce(t.oldest, now()) at time zone 'UTC'),
          date_trunc('month', now() at time zone 'UTC') - interval '12 months'),
    date_trunc('month', now() at time zone 'UTC') - interval '120 months')::date
from (values
  ('ledger_entries', 'created_at', (select min(created_at) from ledger_transactions)),
  ('usage_events', 'occurred_at', (select min(occurred_at) from usage_events))
) t(name, key_column, oldest);

create table usage_events_partitioned (
  id text not null,
  org_id text not null,
  idempotency_key text not null,
  occurred_at timestamptz not null,
  product text not null,
  model text not null default '',
  quantities jsonb not null,
  cost nano_usd not null constraint usage_events_cost_check check (cost >= 0),
  catalog_version text not null,
  hold_id text,
  transaction_id text,
  recorded_at timestamptz not null,
  seq bigint generated always as identity,
  api_key_id text,
  project text constraint usage_events_project_check check (project ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$'),
  constraint usage_events_partitioned_pkey primary key (id, occurred_at)
) partition by range (occurred_at);

create table ledger_entries_partitioned (
  id bigint generated always as identity,
  transaction_id text not null,
  account_id text not null,
  amount nano_usd not null constraint ledger_entries_amount_check check (amount <> 0),
  -- The transaction's created_at (the default is right for a transaction inserted with its own
  -- default in the same database transaction).
  created_at timestamptz not null default now(),
  constraint ledger_entries_partitioned_pkey primary key (id, created_at)
) partition by range (created_at);

-- Every month's partition from first_month to three months ahead, the older and the default
-- ones; partitions_ensure makes the same shape later (through ATTACH, not to block readers).
do $$
declare
  t record;
  m date;
begin
  for t in select table_name, first_month from partitioned_tables loop
    execute format('create table %I partition of %I for values from (minvalue) to (%L)',
      t.table_name || '_before', t.table_name || '_partitioned', t.first_month::timestamp at time zone 'UTC');
    for m in
      select generate_series(t.first_month, date_trunc('month', now() at time zone 'UTC') + interval '3 months', interval '1 month')::date
    loop
      execute format('create table %I partition of %I for values from (%L) to (%L)',
        t.table_name || '_p' || to_char(m, 'YYYY_MM'), t.table_name || '_partitioned',
        m::timestamp at time zone 'UTC', (m + interval '1 month')::timestamp at time zone 'UTC');
    end loop;
    execute format('create table %I partition of %I default', t.table_name || '_default', t.table_name || '_partitioned');
  end loop;
end $$;

-- The copies; indexes and foreign keys after (a sort per partition instead of row-by-row index
-- growth, one join per key instead of a probe per row). No trigger is on the new tables yet: the
-- balances, alerts and events of these rows were made when they were first written.
insert into usage_events_partitioned (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost,
  catalog_version, hold_id, transaction_id, recorded_at, seq, api_key_id, project)
overriding system value
select id, org_id, idempotency_key, occurred_at, product, model, quantities, cost,
  catalog_version, hold_id, transaction_id, recorded_at, seq, api_key_id, project
from usage_events;

-- An entry takes its transaction's created_at (before, it had the database's now() of its
-- insert, a few milliseconds from the transaction's clock).
insert into ledger_entries_partitioned (id, transaction_id, account_id, amount, created_at)
overriding system value
select e.id, e.transaction_id, e.account_id, e.amount, t.created_at
from ledger_entries e join ledger_transactions t on t.id = e.transaction_id;

-- The per-organization idempotency key of usage, unique across every partition.
create table usage_event_keys (
  org_id text not null,
  idempotency_key text not null,
  occurred_at timestamptz not null,
  event_id text not null,
  primary key (org_id, idempotency_key)
);
insert into usage_event_keys (org_id, idempotency_key, occurred_at, event_id)
select org_id, idempotency_key, occurred_at, id from usage_events;

do $$
declare
  old_n bigint;
  new_n bigint;
  old_sum numeric;
  new_sum numeric;
begin
  select count(*), coalesce(sum(amount), 0) into old_n, old_sum from ledger_entries;
  select count(*), coalesce(sum(amount), 0) into new_n, new_sum from ledger_entries_partitioned;
  if (old_n, old_sum) is distinct from (new_n, new_sum) then
    raise exception 'ledger_entries copy differs: % rows summing to %, copied % summing to %', old_n, old_sum, new_n, new_sum;
  end if;
  select count(*), coalesce(sum(cost), 0) into old_n, old_sum from usage_events;
  select count(*), coalesce(sum(cost), 0) into new_n, new_sum from usage_events_partitioned;
  if (old_n, old_sum) is distinct from (new_n, new_sum) then
    raise exception 'usage_events copy differs: % rows costing %, copied % costing %', old_n, old_sum, new_n, new_sum;
  end if;
end $$;

create index usage_events_partitioned_org_time on usage_events_partitioned (org_id, occurred_at);
create index usage_events_partitioned_org_seq on usage_events_partitioned (org_id, seq);
create index ledger_entries_partitioned_txn_idx on ledger_entries_partitioned (transaction_id);
create index ledger_entries_partitioned_account_idx on ledger_entries_partitioned (account_id);
alter table usage_events_partitioned
  add constraint usage_events_org_id_fkey foreign key (org_id) references organizations(id),
  add constraint usage_events_hold_id_fkey foreign key (hold_id) references holds(id),
  -- Null only for a free event that released no hold: nothing moved.
  add constraint usage_events_transaction_id_fkey foreign key (transaction_id) references ledger_transactions(id)
    deferrable initially deferred;
alter table ledger_entries_partitioned
  add constraint ledger_entries_transaction_id_fkey foreign key (transaction_id) references ledger_transactions(id),
  add constraint ledger_entries_account_id_fkey foreign key (account_id) references ledger_accounts(id);

-- Identities go on from the copied rows.
select setval(pg_get_serial_sequence('usage_events_partitioned', 'seq'), greatest(coalesce(max(seq), 0), 1), max(seq) is not null)
from usage_events_partitioned;
select setval(pg_get_serial_sequence('ledger_entries_partitioned', 'id'), greatest(coalesce(max(id), 0), 1), max(id) is not null)
from ledger_entries_partitioned;

-- The swap.
drop table usage_events;
drop table ledger_entries;
alter table usage_events_partitioned rename to usage_events;
alter table ledger_entries_partitioned rename to ledger_entries;
alter index usage_events_partitioned_pkey rename to usage_events_pkey;
alter index usage_events_partitioned_org_time rename to usage_events_org_time;
alter index usage_events_partitioned_org_seq rename to usage_events_org_seq;
alter index ledger_entries_partitioned_pkey rename to ledger_entries_pkey;
alter index ledger_entries_partitioned_txn_idx rename to ledger_entries_txn_idx;
alter index ledger_entries_partitioned_account_idx rename to ledger_entries_account_idx;
alter sequence usage_events_partitioned_seq_seq rename to usage_events_seq_seq;
alter sequence ledger_entries_partitioned_id_seq rename to ledger_entries_id_seq;

-- The triggers, grants and functions that name these tables live in src/db/functions/: every
-- file there is applied again after this migration (the old tables took their triggers with
-- them), whether or not its text changed.
do $$
begin
  if to_regclass('schema_functions') is not null then
    delete from schema_functions;
  end if;
end $$;

analyze usage_events, ledger_entries, usage_event_keys;
