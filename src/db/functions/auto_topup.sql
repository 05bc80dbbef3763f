-- auto_topup_note_crossing(org, balance before, balance after, debit transaction, now) → crossing id | null
--
-- Called by every debit path in the debit's own transaction, under the org's lock: metering_batch
-- (metering.sql) for usage, watchLowBalance (src/billing/low-balance.ts) for the others. The
-- balance judged is the ledger's (credits + held as posted), as for low-balance alerts, so each
-- crossing belongs to exactly one transaction and organization (a metering batch's usage
-- transaction debits several: migration 0041). Writes one auto_topup_crossings row when the
-- org's auto top-up is on and the debit took the balance from at or above its threshold to
-- below it; the row's commit notifies the workers (auto_topup_crossings_notify), which decide it.
create or replace function auto_topup_note_crossing(
  p_org text, p_before bigint, p_after bigint, p_txn text, p_now timestamptz
) returns text language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_threshold bigint;
  v_id text;
begin
  if p_txn is null or p_after >= p_before then
    return null;
  end if;
  select s.threshold into v_threshold from auto_topup_settings s where s.org_id = p_org and s.enabled;
  if not found or not low_balance_crossed(p_before, p_after, v_threshold) then
    return null;
  end if;
  v_id := 'atc_' || replace(gen_random_uuid()::text, '-', '');
  insert into auto_topup_crossings (id, org_id, transaction_id, balance, threshold, created_at)
  values (v_id, p_org, p_txn, p_after, v_threshold, p_now)
  on conflict (transaction_id, org_id) do nothing;
  return case when found then v_id end;
end $$;

-- A new crossing tells the workers when its transaction commits; the sweep catches one nobody heard.
create or replace function auto_topup_crossings_notify() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  perform pg_notify('auto_topup_crossings', new.id);
  return null;
end $$;
drop trigger if exists auto_topup_crossings_notify on auto_topup_crossings;
create trigger auto_topup_crossings_notify after insert on auto_topup_crossings for each row execute function auto_topup_crossings_notify();
