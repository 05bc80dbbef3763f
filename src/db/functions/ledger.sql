-- The ledger's guards and its balance cache (tables in migrations 0002 and 0010).
--
-- Every trigger function here (and in invoice_guards.sql) pins `search_path = billing, pg_temp`:
-- otherwise a session's temporary tables come first in name lookup, and the app's role could
-- create a temp `ledger_entries` holding a balanced pair, then insert a lone entry into
-- billing.ledger_entries that the balance check, reading the temp table, lets through.
--
-- Every transaction must balance: checked per statement, over the entries the statement wrote,
-- per transaction. A transaction's entries are written in one statement (as postTransaction and
-- metering_post do, both from transfers), and since every earlier statement was held to the same
-- rule, the entries already there sum to zero: the transaction still sums to zero exactly when
-- this statement's entries of it do (and a new one has at least two entries, none being zero).
-- So nothing can ever add an entry that unbalances a transaction later, and the check reads no
-- entry but the statement's own (ledger_entries is partitioned by month: a probe by transaction
-- alone would visit every partition).
--
-- The statement triggers here run on every posting of every path, so their plans must stay
-- index probes as tables grow: each reads a table through a probe per row of the statement, and
-- sequential scans are off for them (a session keeps its cached plans until statistics change, and
-- one made while a table was small would otherwise scan it whole as it grows). JIT is off for them
-- too: a plan that must still scan (there is no index for it) is costed past jit_above_cost by the
-- disabled scan, and compiling it would cost milliseconds on a path that takes microseconds.
--
-- An entry carries its transaction's created_at, the partition key (migration 0035): the check
-- reads each touched transaction by its primary key and refuses an entry dated otherwise, so a
-- transaction's entries are all in one partition, where has-entries and the history find them.
create or replace function ledger_assert_balanced() returns trigger language plpgsql
set search_path = billing, pg_temp
set enable_seqscan = off  -- see the head of this file
set jit = off
as $$
declare
  bad record;
begin
  select s.transaction_id, s.total, s.n, s.first_at, s.last_at, t.created_at, t.org_id, o.found as org_found into bad
  from (
    select i.transaction_id, sum(i.amount) as total, count(*) as n, min(i.created_at) as first_at, max(i.created_at) as last_at
    from inserted i group by i.transaction_id
  ) s
  -- A probe per transaction: with its limit the subquery is never flattened into a join, which a
  -- plan cached while ledger_transactions was small made a hash join over the whole table, read
  -- again on every posting (bench/RESULTS-metering.md, 2026-12-02, night).
  left join lateral (select t.created_at, t.org_id from ledger_transactions t where t.id = s.transaction_id limit 1) t on true
  left join lateral (select true as found from organizations o where o.id = t.org_id limit 1) o on true
  where t.created_at is null or s.total <> 0 or s.first_at <> t.created_at or s.last_at <> t.created_at
     or (t.org_id is not null and o.found is null)
  limit 1;
  if found then
    -- In place of a foreign key (migration 0036): every entry names a transaction that exists.
    if bad.created_at is null then
      raise exception 'ledger entries name transaction %, which does not exist', bad.transaction_id
        using errcode = 'foreign_key_violation';
    end if;
    -- In place of the transaction's foreign key (migration 0039): its organization exists. Every
    -- transaction comes here, as one without entries is refused at commit.
    if bad.org_id is not null and bad.org_found is null then
      raise exception 'ledger transaction % names organization %, which does not exist', bad.transaction_id, bad.org_id
        using errcode = 'foreign_key_violation';
    end if;
    if bad.total <> 0 then
      raise exception 'ledger transaction % is unbalanced: % entries summing to %', bad.transaction_id, bad.n, bad.total
        using errcode = 'check_violation';
    end if;
    raise exception 'ledger transaction %: its entries must carry its created_at (%), not %', bad.transaction_id,
      bad.created_at, case when bad.first_at <> bad.created_at then bad.first_at else bad.last_at end
      using errcode = 'check_violation';
  end if;
  return null;
end $$;
drop trigger if exists ledger_entries_balanced on ledger_entries;
create trigger ledger_entries_balanced after insert on ledger_entries
  referencing new table as inserted for each statement execute function ledger_assert_balanced();

-- ledger_transfer, the SQL twin of `transfer` (src/ledger/post-transaction.ts), built metering's
-- per-organization transactions; a batch's one usage transaction (metering_post) has no pairs.
drop function if exists ledger_transfer(text, text, text, bigint);

-- A transaction with no entries at all is refused as well (checked at commit). Its entries carry
-- its created_at, so they are in the one partition whose range holds that date: the check probes
-- that partition by name, a plain table whose plan the plan cache keeps. Through the parent, a
-- generic plan opens and locks every month's partition and its indexes on each call (0.17 ms),
-- and a plan made for each call's date costs its planning (~0.05 ms) per transaction, against
-- ~0.015 ms for the cached plan on the partition (bench/RESULTS-metering.md, 2026-12-02 15:00 UTC).
--
-- A partition is named in a static statement only, so ledger_assert_has_entries is generated:
-- ledger_has_entries_define writes one branch per range partition of ledger_entries, from the
-- bounds PostgreSQL holds for it (newest first, so the current month is found in a few
-- comparisons). A date no branch covers (a month made after the function was written, or none
-- made: the default partition) is probed through the parent, planned for that date: a month
-- attached since is only slower. It is written again by this file and by partitions_ensure after
-- it attaches a month (functions/partitions.sql), under the lock partitions_ensure takes, so two
-- writers never race on it; an operator who detaches or drops a month's partition runs
-- `select billing.ledger_has_entries_define()` in the same transaction.
--
-- The probe names the transaction alone (the partition's range holds its date, and every entry
-- carries its transaction's date: ledger_assert_balanced), so the one index it can use is the
-- partition's index on transaction_id; sequential and bitmap scans are off for it, so the plan
-- cached while a month's partition is young stays that index probe as the month fills. (The first
-- version also matched created_at, and the plan cache kept a plan reading the partition's whole
-- primary-key index: 0.166 ms a call in bench/metering-pg.ts, reverted in df5687f.)
--
-- The check is SECURITY DEFINER: the app's role has no rights on the partitions themselves
-- (functions/grants.sql), only on the parent. It only reads, and it runs as a trigger alone (its
-- execute right is revoked from everyone but its owner).
create or replace function ledger_has_entries_define() returns void language plpgsql
set search_path = billing, pg_temp
set datestyle = 'ISO, YMD'
set timezone = 'UTC'
as $define$
declare
  v_branches text;
begin
  perform pg_advisory_xact_lock(hashtext('billing.partitions_ensure'));
  select string_agg(format(
    E'  %s %s then\n    v_found := exists (select from %I.%I where transaction_id = new.id);',
    case when b.n = 1 then 'if' else 'elsif' end,
    coalesce(nullif(concat_ws(' and ', 'new.created_at >= timestamptz ' || quote_literal(b.lo),
      'new.created_at < timestamptz ' || quote_literal(b.hi)), ''), 'true'),
    b.nspname, b.relname), E'\n' order by b.n)
  into v_branches
  from (
    select r.nspname, r.relname, r.lo, r.hi, row_number() over (order by r.lo desc nulls last) as n
    from (
      select c.relnamespace::regnamespace::text as nspname, c.relname,
        case when m.bound[1] <> 'MINVALUE' then m.bound[1]::timestamptz end as lo,
        case when m.bound[2] <> 'MAXVALUE' then m.bound[2]::timestamptz end as hi
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      cross join lateral regexp_match(pg_get_expr(c.relpartbound, c.oid),
        $$^FOR VALUES FROM \('?([^')]*)'?\) TO \('?([^')]*)'?\)$$) as m(bound)
      where i.inhparent = 'billing.ledger_entries'::regclass and m.bound is not null
    ) r
  ) b;
  execute format($fn$
create or replace function ledger_assert_has_entries() returns trigger language plpgsql security definer
set search_path = billing, pg_temp
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
set enable_bitmapscan = off
set jit = off
as $body$
declare
  v_found boolean;
begin
%s
    -- No partition of its own when this was written: the parent finds it, planned for this date.
    execute 'select exists (select from ledger_entries where transaction_id = $1 and created_at = $2)'
      into v_found using new.id, new.created_at;
%s
  if not v_found then
    raise exception 'ledger transaction %% has no entries', new.id using errcode = 'check_violation';
  end if;
  return null;
end $body$$fn$, coalesce(v_branches || E'\n  else', '  begin'), case when v_branches is null then '  end;' else '  end if;' end);
  revoke all on function ledger_assert_has_entries() from public;
end $define$;
revoke all on function ledger_has_entries_define() from public;
select ledger_has_entries_define();
drop trigger if exists ledger_transactions_have_entries on ledger_transactions;
create constraint trigger ledger_transactions_have_entries after insert on ledger_transactions
  deferrable initially deferred for each row execute function ledger_assert_has_entries();

-- An organization's transactions are listed newest first by seq (GET /v1/billing/transactions),
-- so for each organization seq must follow commit order: a client paging the list, or syncing by
-- reading it until an id it knows, must never have a transaction commit later below one it has
-- seen. Its identity default is taken as the row is inserted, which is not enough: a grant took
-- seq 10, then waited for the organization's credits account, which a metering batch held; the
-- batch took 11 and committed first. So a transaction naming an organization takes its seq again
-- here, once it holds the lock on the organization's credits account, which it keeps until commit
-- and which every writer of that organization's money takes (its entries update that account;
-- metering_batch locks it in phase 1, before it writes the transaction its ledger_transaction_orgs
-- rows take their seq from). Writers of one organization then take seqs in the order they commit.
-- (The default's value is skipped: seqs have gaps, and only their order means anything.)
create or replace function ledger_transactions_seq_in_commit_order() returns trigger language plpgsql
set search_path = billing, pg_temp
set enable_seqscan = off  -- see the head of this file
set jit = off
as $$
begin
  perform 1 from ledger_accounts a where a.id = 'org:' || new.org_id || ':credits' for update;
  new.seq := nextval('ledger_transactions_seq_seq');
  return new;
end $$;
drop trigger if exists ledger_transactions_seq_in_commit_order on ledger_transactions;
create trigger ledger_transactions_seq_in_commit_order before insert on ledger_transactions for each row
  when (new.org_id is not null) execute function ledger_transactions_seq_in_commit_order();

-- Entries and transactions are facts: corrections are new reversing transactions, never edits.
create or replace function ledger_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception '% is append-only: % refused', tg_table_name, tg_op using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists ledger_entries_immutable on ledger_entries;
create trigger ledger_entries_immutable before update or delete on ledger_entries
  for each row execute function ledger_refuse_change();
drop trigger if exists ledger_entries_no_truncate on ledger_entries;
create trigger ledger_entries_no_truncate before truncate on ledger_entries
  for each statement execute function ledger_refuse_change();
drop trigger if exists ledger_transactions_immutable on ledger_transactions;
create trigger ledger_transactions_immutable before update or delete on ledger_transactions
  for each row execute function ledger_refuse_change();
drop trigger if exists ledger_transactions_no_truncate on ledger_transactions;
create trigger ledger_transactions_no_truncate before truncate on ledger_transactions
  for each statement execute function ledger_refuse_change();
drop trigger if exists ledger_transaction_orgs_immutable on ledger_transaction_orgs;
create trigger ledger_transaction_orgs_immutable before update or delete on ledger_transaction_orgs
  for each row execute function ledger_refuse_change();
drop trigger if exists ledger_transaction_orgs_no_truncate on ledger_transaction_orgs;
create trigger ledger_transaction_orgs_no_truncate before truncate on ledger_transaction_orgs
  for each statement execute function ledger_refuse_change();

-- The balance cache of organization accounts, kept in the same statement as the entries, one
-- update per account per statement. System accounts are left uncached on purpose: every org's
-- usage credits system:revenue, and one hot row updated by every request would serialize all
-- organizations behind it. The accounts are reached through their primary key and only then
-- joined to the statement's totals, so the plan cannot turn into a scan of every account.
--
-- It also refuses an entry naming an account that does not exist (in place of a foreign key,
-- migration 0036): the accounts are read once by primary key, and the update then reaches them
-- through what that read found.
--
-- balance.depleted: a statement that takes an organization's balance (its credits account, the
-- balance the API shows and balance.low judges: src/billing/low-balance.ts) from above zero to
-- zero or below. The update returns each account's balance after the statement, so the balance
-- before is that less the statement's total: judged here, with no read of its own (a trigger
-- apart re-read every debited organization's accounts on every posting: 5 % of metering's
-- PostgreSQL CPU, bench/RESULTS-metering.md). The row stays locked by this update until commit,
-- so crossings are judged one transaction after another: each belongs to exactly one, which
-- names the event (the org's most negative transaction within the statement; a metering batch's
-- one usage transaction can deplete several organizations, each of which gets its event).
create or replace function ledger_apply_to_balance() returns trigger language plpgsql
set search_path = billing, pg_temp
set enable_seqscan = off  -- see the head of this file
set jit = off
as $$
declare
  v_missing text;
  v_depleted text[];
  v_orgs text[];
  v_balances bigint[];
  r record;
begin
  with totals as materialized (
    select account_id, sum(amount) as total from inserted group by account_id
  ), accounts as materialized (
    select a.id, a.kind from ledger_accounts a where a.id = any (array(select account_id from totals))
  ), applied as (
    update ledger_accounts a set balance = a.balance + t.total
    from totals t
    where a.id = any (array(select id from accounts where kind <> 'system')) and a.id = t.account_id
    returning a.id, a.org_id, a.kind, a.balance::bigint as balance, t.total
  )
  -- An account is missing exactly when fewer were found than named (ids are unique): only then is
  -- the missing one looked for. Planned for a handful of rows, that search is a nested loop over
  -- both lists, which for a batch naming 400 organizations cost 6 ms of the statement's 8.
  select (select t.account_id from totals t
          where (select count(*) from accounts) < (select count(*) from totals)
            and not exists (select 1 from accounts x where x.id = t.account_id)
          limit 1),
         d.ids, d.orgs, d.balances
  into v_missing, v_depleted, v_orgs, v_balances
  from (select array_agg(p.id) as ids, array_agg(p.org_id) as orgs, array_agg(p.balance) as balances from applied p
        where p.kind = 'org_credits' and p.total < 0 and p.balance <= 0 and p.balance - p.total > 0) d;
  if v_missing is not null then
    raise exception 'ledger entries name account %, which does not exist', v_missing using errcode = 'foreign_key_violation';
  end if;
  if v_depleted is null then
    return null;
  end if;
  for r in
    select d.org_id, d.balance, m.transaction_id, m.created_at
    from unnest(v_depleted, v_orgs, v_balances) d(id, org_id, balance)
    cross join lateral (
      select i.transaction_id, min(i.created_at) as created_at from inserted i where i.account_id = d.id
      group by i.transaction_id order by sum(i.amount), i.transaction_id limit 1
    ) m
  loop
    perform emit_event(r.org_id, 'balance.depleted', r.transaction_id || ':' || r.org_id,
      event_usd('balance', r.balance) || jsonb_build_object('transaction_id', r.transaction_id),
      r.created_at);
  end loop;
  return null;
end $$;
drop trigger if exists ledger_entries_apply on ledger_entries;
create trigger ledger_entries_apply after insert on ledger_entries
  referencing new table as inserted for each statement execute function ledger_apply_to_balance();

-- The cached balance is the sum of the account's entries, and `held` the sum of the org's active
-- holds, so only ledger_apply_to_balance and the holds triggers (holds.sql) may change them:
-- triggers, hence pg_trigger_depth() >= 1 while they run. An UPDATE written by a client (the
-- app's role has UPDATE on the table, for those triggers), or any change to an account's id, org
-- or kind, or a new account opened with a balance or a reservation, is refused. The WHEN
-- clauses keep the function call off the hot path (every posting updates its accounts).
create or replace function ledger_accounts_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'ledger account %: its balance changes only by posting entries (% refused)', new.id, tg_op
    using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists ledger_accounts_balance_by_postings on ledger_accounts;
create trigger ledger_accounts_balance_by_postings before update on ledger_accounts for each row
  when (pg_trigger_depth() < 1 or (new.id, new.org_id, new.kind) is distinct from (old.id, old.org_id, old.kind))
  execute function ledger_accounts_refuse_change();
drop trigger if exists ledger_accounts_open_at_zero on ledger_accounts;
create trigger ledger_accounts_open_at_zero before insert on ledger_accounts for each row
  when (new.balance <> 0 or new.held <> 0) execute function ledger_accounts_refuse_change();

-- In place of org_id's foreign key (migration 0045): an organization's account is opened for an
-- organization that exists. Accounts are opened with their organization, not on the hot path.
create or replace function ledger_accounts_refuse_missing_org() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  if not exists (select 1 from organizations o where o.id = new.org_id) then
    raise exception 'ledger account % names organization %, which does not exist', new.id, new.org_id
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end $$;
drop trigger if exists ledger_accounts_org_exists on ledger_accounts;
create trigger ledger_accounts_org_exists before insert on ledger_accounts for each row
  when (new.org_id is not null) execute function ledger_accounts_refuse_missing_org();

-- Usage events and catalog versions are facts too.
create or replace function usage_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'usage events are append-only: % refused', tg_op using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists usage_events_immutable on usage_events;
create trigger usage_events_immutable before update or delete on usage_events for each row execute function usage_refuse_change();
drop trigger if exists usage_events_no_truncate on usage_events;
create trigger usage_events_no_truncate before truncate on usage_events for each statement execute function usage_refuse_change();

-- An organization's usage idempotency key is unique across every partition of usage_events (a
-- unique index there could only be unique per month, migration 0035): each statement of events
-- claims its keys in usage_event_keys, one row per event, so an event can never be written
-- without its key, and a second event under a taken key fails the statement as the unique index
-- on usage_events did (23505, waiting for a racing writer's commit first).
--
-- The same trigger refuses an event naming an organization, a hold or a ledger transaction that
-- does not exist (23503, in place of foreign keys: migration 0039), with one probe per distinct
-- value. The probes are scalar subqueries with a limit, never flattened into joins, and
-- sequential scans are off for them: a plan cached while a table was small stays an index probe.
-- They run when the statement ends, not at commit as the deferred keys did: an event's hold and
-- usage transaction are written before it (metering_post does; so must any other writer).
create or replace function usage_events_after_insert() returns trigger language plpgsql
set search_path = billing, pg_temp
set enable_seqscan = off
set jit = off
as $$
declare
  v_missing record;
begin
  insert into usage_event_keys (org_id, idempotency_key, occurred_at, event_id)
  select i.org_id, i.idempotency_key, i.occurred_at, i.id from inserted i;
  select r.what, r.id into v_missing
  from (
    select 'organization' as what, o.id from (select distinct org_id as id from inserted) o
    where (select 1 from organizations x where x.id = o.id limit 1) is null
    union all
    select 'hold', h.id from (select distinct hold_id as id from inserted where hold_id is not null) h
    where (select 1 from holds x where x.id = h.id limit 1) is null
    union all
    select 'ledger transaction', t.id from (select distinct transaction_id as id from inserted where transaction_id is not null) t
    where (select 1 from ledger_transactions x where x.id = t.id limit 1) is null
  ) r
  limit 1;
  if found then
    raise exception 'usage events name % %, which does not exist', v_missing.what, v_missing.id
      using errcode = 'foreign_key_violation';
  end if;
  return null;
end $$;
drop trigger if exists usage_events_claim_keys on usage_events;
drop function if exists usage_events_claim_keys();
drop trigger if exists usage_events_after_insert on usage_events;
create trigger usage_events_after_insert after insert on usage_events
  referencing new table as inserted for each statement execute function usage_events_after_insert();
drop trigger if exists usage_event_keys_immutable on usage_event_keys;
create trigger usage_event_keys_immutable before update or delete on usage_event_keys for each row execute function usage_refuse_change();
drop trigger if exists usage_event_keys_no_truncate on usage_event_keys;
create trigger usage_event_keys_no_truncate before truncate on usage_event_keys for each statement execute function usage_refuse_change();

-- An organization keeps its id: holds, usage events and ledger transactions name it and are
-- checked only when written (migration 0039), so a new id would leave them naming nothing. (Its
-- ledger accounts' key to it would refuse the change too, but an organization may have none yet.)
create or replace function organizations_refuse_new_id() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'organization % keeps its id: what names it would name nothing', old.id using errcode = 'foreign_key_violation';
end $$;
drop trigger if exists organizations_id_fixed on organizations;
create trigger organizations_id_fixed before update of id on organizations for each row
  when (new.id is distinct from old.id) execute function organizations_refuse_new_id();

create or replace function catalog_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'catalog version rows are immutable: publish a new version instead' using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists catalog_versions_immutable on catalog_versions;
create trigger catalog_versions_immutable before update or delete on catalog_versions for each row execute function catalog_refuse_change();
drop trigger if exists catalog_rates_immutable on catalog_rates;
create trigger catalog_rates_immutable before update or delete on catalog_rates for each row execute function catalog_refuse_change();
drop trigger if exists catalog_plans_immutable on catalog_plans;
create trigger catalog_plans_immutable before update or delete on catalog_plans for each row execute function catalog_refuse_change();

-- A new low-balance alert tells the workers when its transaction commits (a NOTIFY is delivered
-- only on commit, never for a rolled-back one), so a worker enqueues its delivery at once,
-- whichever path wrote it; the sweep of undelivered alerts catches one nobody heard.
create or replace function balance_alerts_notify() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  perform pg_notify('balance_alerts', new.id);
  return null;
end $$;
drop trigger if exists balance_alerts_notify on balance_alerts;
create trigger balance_alerts_notify after insert on balance_alerts for each row execute function balance_alerts_notify();
