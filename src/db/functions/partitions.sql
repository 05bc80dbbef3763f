-- Monthly partitions of the tables in partitioned_tables (migration 0035; docs/scale.md, "History
-- that grows for years"), made ahead of time by the `ensure-partitions` maintenance job.
--
-- partitions_ensure(p_months_ahead) makes every missing month from the table's first month
-- through the current month plus p_months_ahead (the database's clock, UTC months), each as
-- CREATE TABLE then ATTACH PARTITION: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, so
-- reads and inserts go on while it runs (CREATE TABLE … PARTITION OF would take ACCESS
-- EXCLUSIVE). It also locks the default partition while it checks that none of its rows belong
-- to the new month; lock_timeout bounds how long it waits (behind a ledger check's scan, say),
-- and a month it could not make is made by the next run.
--
-- A month whose rows are already in the default partition (the job had stopped, or an event
-- dated years ahead) is left as it is: its rows stay in the default partition, which every
-- query reads like any other, and the month is reported as 'in_default'. Nothing is moved,
-- so nothing can be lost; moving them is an operator's step (docs/scale.md).
--
-- Two workers running it at once: an advisory lock makes the second wait and find every month
-- made. It is SECURITY DEFINER: the app's role may not create tables, and this is the one DDL it
-- may cause, with its bounds computed here from a month count (and, after a new month of
-- ledger_entries, the has-entries check written again to name it: functions/ledger.sql). Each
-- new partition's rights are revoked from the app, which reaches rows only through the parent:
-- an insert straight into a partition would skip the parent's statement triggers (the ledger's
-- balance check among them).

create or replace function partitions_ensure(p_months_ahead int)
returns table (table_name text, month date, outcome text)
language plpgsql security definer
set search_path = billing, pg_temp
set lock_timeout = '2s'
set datestyle = 'ISO, YMD'  -- the bounds are written as text (%L): the same text whatever the caller's session
set timezone = 'UTC'
as $$
declare
  t record;
  m date;
  v_name text;
  v_from timestamptz;
  v_to timestamptz;
  v_in_default boolean;
  v_created boolean := false;
begin
  if p_months_ahead is null or p_months_ahead < 0 or p_months_ahead > 24 then
    raise exception 'partitions_ensure: months ahead must be 0 to 24, not %', p_months_ahead using errcode = '22023';
  end if;
  perform pg_advisory_xact_lock(hashtext('billing.partitions_ensure'));
  for t in select p.table_name, p.key_column, p.first_month from partitioned_tables p order by p.table_name loop
    for m in
      select generate_series(t.first_month,
        date_trunc('month', now() at time zone 'UTC') + make_interval(months => p_months_ahead), interval '1 month')::date
    loop
      v_name := t.table_name || '_p' || to_char(m, 'YYYY_MM');
      -- In billing only: a temporary table of the same name is not the month's partition.
      continue when to_regclass(format('billing.%I', v_name)) is not null;
      v_from := m::timestamp at time zone 'UTC';
      v_to := (m + interval '1 month')::timestamp at time zone 'UTC';
      execute format('select exists (select from %I where %I >= $1 and %I < $2)',
        t.table_name || '_default', t.key_column, t.key_column) into v_in_default using v_from, v_to;
      if v_in_default then
        table_name := t.table_name;
        month := m;
        outcome := 'in_default';
        return next;
        continue;
      end if;
      -- The bound as a CHECK while it attaches, so ATTACH need not scan the new table to prove it.
      execute format('create table %I (like %I including defaults including constraints, constraint partition_bound check (%I >= %L and %I < %L))',
        v_name, t.table_name, t.key_column, v_from, t.key_column, v_to);
      execute format('alter table %I attach partition %I for values from (%L) to (%L)', t.table_name, v_name, v_from, v_to);
      execute format('alter table %I drop constraint partition_bound', v_name);
      execute format('revoke all on %I from hanzo_app', v_name);
      table_name := t.table_name;
      month := m;
      outcome := 'created';
      v_created := v_created or t.table_name = 'ledger_entries';
      return next;
    end loop;
  end loop;
  -- The ledger's has-entries check names each partition of ledger_entries (functions/ledger.sql).
  if v_created then
    perform ledger_has_entries_define();
  end if;
end $$;
revoke all on function partitions_ensure(int) from public;
grant execute on function partitions_ensure(int) to hanzo_app;

-- Every partition of a partitioned table, with its bounds (NULL: the default partition), for
-- operators and tests.
create or replace view partitions as
select p.table_name, c.relname::text as partition, pg_get_expr(c.relpartbound, c.oid) as bounds
from partitioned_tables p
join pg_class parent on parent.relname = p.table_name and parent.relnamespace = 'billing'::regnamespace
join pg_inherits i on i.inhparent = parent.oid
join pg_class c on c.oid = i.inhrelid;
