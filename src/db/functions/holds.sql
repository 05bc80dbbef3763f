-- A live hold reserves its amount on its organization's credits account (migration 0037):
-- ledger_accounts.held is the sum of the organization's active holds, kept here by statement
-- triggers whatever writes holds (a new active hold adds its amount, a hold leaving 'active'
-- takes it off), so it cannot drift from the holds table; the ledger check recomputes it
-- (src/ledger/check.ts). A hold moves no money on the ledger: the credits account keeps the
-- whole balance, and what the organization can spend is balance - held.
--
-- The app's role cannot write `held` itself: ledger_accounts_balance_by_postings (ledger.sql)
-- refuses any update of an account made outside a trigger.

-- Adds each organization's change of reserved amount (its new active holds, less the holds
-- that left 'active') to its credits account, one update per account, reached through the
-- primary key (as ledger_apply_to_balance does). An active hold whose organization has no
-- credits account is refused. One function for both triggers: each names its rows after_rows,
-- and the update trigger its rows as they were before_rows.
create or replace function holds_reserve() returns trigger language plpgsql
set search_path = billing, pg_temp
set enable_seqscan = off  -- probes stay probes as tables grow (as the ledger's triggers: ledger.sql)
set jit = off
as $$
declare
  v_orgs text[];
  v_deltas bigint[];
  v_updated int;
  v_missing text;
begin
  -- In place of the closing's foreign key (migration 0042): a hold closed by a transaction names
  -- one that exists, probed once per distinct transaction (a batch's settles all name its one
  -- usage transaction, written before them).
  select c.id into v_missing from (select distinct close_transaction_id as id from after_rows where close_transaction_id is not null) c
  where (select 1 from ledger_transactions x where x.id = c.id limit 1) is null
  limit 1;
  if found then
    raise exception 'holds name closing transaction %, which does not exist', v_missing using errcode = 'foreign_key_violation';
  end if;
  if tg_op = 'INSERT' then
    -- In place of the holds' foreign key (migration 0039): every hold names an organization that
    -- exists (its id stays: holds_terms_fixed below), probed once per distinct organization.
    select o.id into v_missing from (select distinct org_id as id from after_rows) o
    where (select 1 from organizations x where x.id = o.id limit 1) is null
    limit 1;
    if found then
      raise exception 'holds name organization %, which does not exist', v_missing using errcode = 'foreign_key_violation';
    end if;
    select array_agg(org_id), array_agg(delta) into v_orgs, v_deltas
    from (select org_id, sum(amount)::bigint as delta from after_rows where status = 'active' group by org_id) d
    where delta <> 0;
  else
    select array_agg(org_id), array_agg(delta) into v_orgs, v_deltas
    from (
      select org_id, sum(amount)::bigint as delta
      from (select n.org_id, n.amount from after_rows n where n.status = 'active'
            union all
            select o.org_id, -o.amount from before_rows o where o.status = 'active') c
      group by org_id
    ) d
    where delta <> 0;
  end if;
  if v_orgs is null then
    return null;
  end if;
  update ledger_accounts a set held = a.held + d.delta
  from unnest(v_orgs, v_deltas) d(org_id, delta)
  where a.id = any (array(select 'org:' || x || ':credits' from unnest(v_orgs) x)) and a.id = 'org:' || d.org_id || ':credits';
  get diagnostics v_updated = row_count;
  if v_updated <> cardinality(v_orgs) then
    raise exception 'holds of % organizations, but % credits accounts to reserve them on', cardinality(v_orgs), v_updated
      using errcode = 'foreign_key_violation';
  end if;
  return null;
end $$;
drop trigger if exists holds_reserve_inserted on holds;
create trigger holds_reserve_inserted after insert on holds
  referencing new table as after_rows for each statement execute function holds_reserve();
drop trigger if exists holds_reserve_updated on holds;
create trigger holds_reserve_updated after update on holds
  referencing old table as before_rows new table as after_rows for each statement execute function holds_reserve();

-- A hold's terms are facts once it is taken: only its closing may change, once (status from
-- 'active' to 'settled' or 'expired', with closed_at and close_transaction_id). Its org, amount
-- and dates decide what it reserves and which grants its usage is charged to (created_at,
-- consume_expiring_grants in money_rules.sql): changed afterwards, a hold back-dated into an
-- expired grant's life would have that grant pay its usage. The WHEN clause keeps the function
-- call off the metering path's own updates.
create or replace function holds_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'hold %: only its closing may change, once (update refused)', old.id using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists holds_terms_fixed on holds;
create trigger holds_terms_fixed before update on holds for each row
  when (old.status <> 'active'
        or (new.id, new.org_id, new.amount, new.idempotency_key, new.product, new.model, new.estimate, new.catalog_version,
            new.api_key_id, new.project, new.expires_at, new.created_at, new.transaction_id)
           is distinct from
           (old.id, old.org_id, old.amount, old.idempotency_key, old.product, old.model, old.estimate, old.catalog_version,
            old.api_key_id, old.project, old.expires_at, old.created_at, old.transaction_id))
  execute function holds_refuse_change();

-- Holds are never deleted (the app's role has no DELETE): a deleted active hold would leave its
-- amount reserved for ever.
create or replace function holds_refuse_delete() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception 'holds are closed (settled or expired), never deleted: % refused', tg_op using errcode = 'insufficient_privilege';
end $$;
drop trigger if exists holds_no_delete on holds;
create trigger holds_no_delete before delete on holds for each row execute function holds_refuse_delete();
drop trigger if exists holds_no_truncate on holds;
create trigger holds_no_truncate before truncate on holds for each statement execute function holds_refuse_delete();
