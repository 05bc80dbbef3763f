-- Customer events (the outbox and event log, table billing_events of migration 0024), written in
-- the transaction of the fact they tell. Facts made in SQL get theirs from the triggers below;
-- facts made in TypeScript call emitEvent (src/billing/events/emit.ts), which calls emit_event.
--
-- emit_event(org, type, fact_key, data, at) → the new event's id, or null when the fact already
-- has its event: (type, fact_key) is unique, and a racing transaction with the same fact waits for
-- the first one's commit and then writes nothing.

-- evt_ + 22 base62 characters from 122 random bits (gen_random_uuid).
create or replace function new_event_id() returns text language plpgsql volatile
  set search_path = billing, pg_temp as $$
declare
  b bytea := uuid_send(gen_random_uuid());
  n numeric := 0;
  s text := '';
begin
  for i in 0..15 loop
    n := n * 256 + get_byte(b, i);
  end loop;
  for i in 1..22 loop
    s := s || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', (n % 62)::int + 1, 1);
    n := floor(n / 62);
  end loop;
  return 'evt_' || s;
end $$;

create or replace function emit_event(p_org text, p_type text, p_fact_key text, p_data jsonb, p_at timestamptz)
returns text language sql volatile
  set search_path = billing, pg_temp as $$
  insert into billing_events (id, org_id, type, fact_key, data, created_at)
  values (new_event_id(), p_org, p_type, p_fact_key, p_data, p_at)
  on conflict (type, fact_key) do nothing
  returning id
$$;

-- USD for event payloads in the API's three forms (src/http/present.ts usdFields): the number,
-- the exact decimal (formatUsd: no trailing zeros) and nano-USD as a string.
create or replace function event_usd(p_name text, p_nano bigint) returns jsonb language sql immutable
  set search_path = billing, pg_temp as $$
  select case when p_nano is null
    then jsonb_build_object(p_name, null, p_name || '_usd', null, p_name || '_nano_usd', null)
    else jsonb_build_object(p_name, trim_scale(p_nano::numeric / 1000000000),
                            p_name || '_usd', trim_scale(p_nano::numeric / 1000000000)::text,
                            p_name || '_nano_usd', p_nano::text)
  end
$$;

-- A timestamp as the API writes it (JavaScript's toISOString: UTC, milliseconds, Z).
create or replace function event_time(p_at timestamptz) returns text language sql immutable
  set search_path = billing, pg_temp as $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A new event tells the workers when its transaction commits (NOTIFY is delivered on commit
-- only): they fan it out to the org's endpoints at once. One nobody heard is found by the sweep.
create or replace function billing_events_notify() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  perform pg_notify('billing_events', new.id);
  return null;
end $$;
drop trigger if exists billing_events_notify on billing_events;
create trigger billing_events_notify after insert on billing_events for each row execute function billing_events_notify();

-- Events are facts: only their fan-out mark may change (and their provisional seq become the final
-- one, once, as billing_events_take_seq gives it: the number it just drew), and nothing is removed.
create or replace function billing_events_refuse_change() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  if tg_op = 'UPDATE' and (new.id, new.org_id, new.type, new.fact_key, new.data, new.created_at)
                      is not distinct from (old.id, old.org_id, old.type, old.fact_key, old.data, old.created_at)
     and (new.seq = old.seq or (old.seq < 0 and new.seq = currval('billing_events_commit_seq'))) then
    return new;
  end if;
  raise exception 'billing_events are append-only (only fanned_out_at changes)' using errcode = 'P0001';
end $$;
drop trigger if exists billing_events_immutable on billing_events;
create trigger billing_events_immutable before update or delete on billing_events
  for each row execute function billing_events_refuse_change();

-- An event's seq is given as its transaction commits (migration 0043), so that, per organization,
-- the event log's order (GET /v1/billing/events, newest first by seq) is the order in which events
-- committed: one that commits after a client read the log is always above what the client saw.
--
-- As each event is written, its organization is noted in the transaction's list (the setting
-- billing.event_orgs, local to the transaction: a rollback to a savepoint takes back what it
-- noted). At the commit, the deferred trigger's first firing locks every organization on the list,
-- in key order, and empties it; each firing then gives its own event its seq, so the transaction's
-- events keep the order they were written in. The locks are held until the commit is done: a
-- transaction numbering events of the same organization waits until then and takes higher numbers.
-- Each firing reads and writes its own row only (a transaction of N events does N probes at
-- commit, not N scans of every event in flight). The list is text, read whole by each note: a
-- transaction writing events of N organizations reads ~N^2 characters. At the metering batch's cap
-- (1,000 organizations, 2,000 events) that was 5-10 % of the batch (measured against the same events
-- over two organizations); thousands of organizations in one transaction would want another form.
--
-- Deadlock-free: these locks are taken only at the commit, when the transaction waits for nothing
-- else, all in one order. An event written during the commit (card_topups_event, deferred too)
-- would lock its organization after the others; so card_topups notes its organization when the row
-- is written, and the first firing locks it with the rest.
create or replace function billing_events_note_own_org() returns trigger language plpgsql
  set search_path = billing, pg_temp
as $$
declare
  v_orgs text := coalesce(current_setting('billing.event_orgs', true), '');
begin
  if strpos(',' || v_orgs || ',', ',' || new.org_id || ',') = 0 then  -- organization ids have no commas
    perform set_config('billing.event_orgs', case when v_orgs = '' then new.org_id else v_orgs || ',' || new.org_id end, true);
  end if;
  return new;
end $$;
drop trigger if exists billing_events_note_org on billing_events;
create trigger billing_events_note_org before insert on billing_events
  for each row execute function billing_events_note_own_org();
drop trigger if exists card_topups_note_event_org on card_topups;
create trigger card_topups_note_event_org before insert on card_topups
  for each row execute function billing_events_note_own_org();

-- Every event starts provisional, whatever its writer asked: a seq given in the INSERT would keep
-- it (the commit only numbers seq < 0), so the app's role could place an event anywhere in an
-- organization's log, out of commit order or on a number already handed out.
create or replace function billing_events_seq_provisional() returns trigger language plpgsql
  set search_path = billing, pg_temp
as $$
begin
  if new.seq is null or new.seq >= 0 then
    new.seq := -nextval('billing_events_commit_seq');
  end if;
  return new;
end $$;
drop trigger if exists billing_events_seq_provisional on billing_events;
create trigger billing_events_seq_provisional before insert on billing_events
  for each row execute function billing_events_seq_provisional();

create or replace function billing_events_take_seq() returns trigger language plpgsql
  set search_path = billing, pg_temp
  set enable_seqscan = off  -- probes stay probes as the table grows (as the ledger's triggers: ledger.sql)
  set jit = off
as $$
declare
  v_orgs text := coalesce(current_setting('billing.event_orgs', true), '');
  v_key bigint;
begin
  if v_orgs <> '' then
    for v_key in
      select distinct hashtextextended('billing_events:' || o, 0) as k from unnest(string_to_array(v_orgs, ',')) o order by k
    loop
      perform pg_advisory_xact_lock(v_key);
    end loop;
    perform set_config('billing.event_orgs', '', true);
  end if;
  -- Held already (noted when the event was written): taken again, so that no event is ever
  -- numbered without its organization's lock.
  perform pg_advisory_xact_lock(hashtextextended('billing_events:' || new.org_id, 0));
  update billing_events set seq = nextval('billing_events_commit_seq') where id = new.id and seq < 0;
  return null;
end $$;
drop trigger if exists billing_events_seq_at_commit on billing_events;
create constraint trigger billing_events_seq_at_commit after insert on billing_events
  deferrable initially deferred for each row execute function billing_events_take_seq();

-- balance.low: every low-balance crossing is one balance_alerts row, written by the transaction
-- whose debit crossed (metering_batch for usage, src/billing/low-balance.ts for every other debit).
create or replace function balance_alerts_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  perform emit_event(new.org_id, 'balance.low', new.id,
    event_usd('balance', new.balance) || event_usd('threshold', new.threshold)
      || jsonb_build_object('transaction_id', new.transaction_id),
    new.created_at);
  return null;
end $$;
drop trigger if exists balance_alerts_event on balance_alerts;
create trigger balance_alerts_event after insert on balance_alerts for each row execute function balance_alerts_event();

-- balance.depleted is judged by the ledger's balance trigger (ledger_apply_to_balance, ledger.sql).
drop trigger if exists ledger_entries_depleted_event on ledger_entries;
drop function if exists ledger_entries_depleted_event();

-- deposit.seen / credited / orphaned / reversed: each change of a deposit's state or counts is a
-- fact of the transaction that makes it (src/billing/deposits/lifecycle.ts and record.ts). Only
-- deposits to an organization's address are told (a rejected transfer to an unknown address has
-- no org). The keys: an appearance in a block (seen, orphaned), the k-th credit, the k-th reversal.
create or replace function husd_deposits_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
declare
  data jsonb;
  seen boolean;
begin
  if new.org_id is null then
    return null;
  end if;
  data := jsonb_build_object('deposit_id', new.id, 'state', new.state, 'reason', new.reason, 'chain_id', new.chain_id,
            'tx_hash', new.tx_hash, 'block_number', new.block_number::text, 'token_address', new.token_address,
            'from', new.from_address, 'amount_base_units', new.amount::text)
          || event_usd('amount', new.amount_nano_usd);
  if tg_op = 'INSERT' then
    seen := new.state = 'seen';
  else
    seen := new.state = 'seen' and (old.state <> 'seen' or old.block_hash is distinct from new.block_hash);
    if new.credit_count > old.credit_count then
      perform emit_event(new.org_id, 'deposit.credited', new.id || ':' || new.credit_count, data, new.updated_at);
    end if;
    if new.reversal_count > old.reversal_count then
      perform emit_event(new.org_id, 'deposit.reversed', new.id || ':' || new.reversal_count, data, new.updated_at);
    end if;
    if new.state = 'orphaned' and old.state <> 'orphaned' then
      perform emit_event(new.org_id, 'deposit.orphaned', new.id || ':' || coalesce(new.block_hash, ''), data, new.updated_at);
    end if;
  end if;
  if seen then
    perform emit_event(new.org_id, 'deposit.seen', new.id || ':' || coalesce(new.block_hash, ''), data, new.updated_at);
  end if;
  return null;
end $$;
drop trigger if exists husd_deposits_event on husd_deposits;
create trigger husd_deposits_event after insert or update on husd_deposits
  for each row execute function husd_deposits_event();

-- invoice.issued when an invoice gets its issued_at (cycle close), invoice.paid when it becomes
-- paid (at issue when nothing is due, or later): each once per invoice.
create or replace function invoices_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
declare
  data jsonb;
begin
  data := jsonb_build_object('invoice_id', new.id, 'number', new.number, 'status', new.status,
            'period_start', event_time(new.period_start), 'period_end', event_time(new.period_end), 'currency', new.currency)
          || event_usd('subtotal', new.subtotal) || event_usd('credits_applied', new.credits_applied)
          || event_usd('amount_due', new.amount_due);
  if new.issued_at is not null and old.issued_at is null then
    perform emit_event(new.org_id, 'invoice.issued', new.id, data, new.issued_at);
  end if;
  if new.status = 'paid' and old.status <> 'paid' then
    perform emit_event(new.org_id, 'invoice.paid', new.id, data, coalesce(new.paid_at, new.issued_at));
  end if;
  return null;
end $$;
drop trigger if exists invoices_event on invoices;
create trigger invoices_event after update on invoices for each row execute function invoices_event();

-- topup.succeeded / topup.failed for the card payments no Checkout Session of ours started (auto
-- top-up charges, renewals' charges, payments made at the processor): their card_topups row is the
-- fact. Top-ups started here (card_checkouts) get theirs from the webhook's own transaction
-- (src/billing/topups/topup-events.ts, keyed by the top-up id), except a payment refused for its
-- currency, told here under the same key. Deferred to the commit, when the webhook has linked
-- the session its payment paid for (payment_intent.succeeded credits before it links), so a
-- session's payment is never told twice. A credited payment is named as GET /v1/billing/topups
-- names it: by its credit's ledger transaction. The payload is topup-events.ts's: no processor ids.
create or replace function card_topups_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
declare
  checkout text := (select c.id from card_checkouts c where c.payment_id = new.payment_id);
begin
  if new.state = 'refused' and checkout is not null then
    perform emit_event(new.org_id, 'topup.failed', checkout,
      jsonb_build_object('topup_id', checkout, 'failure_message', new.reason) || event_usd('amount', null), new.created_at);
  elsif new.state = 'credited' and checkout is null then
    perform emit_event(new.org_id, 'topup.succeeded', new.credit_transaction_id,
      jsonb_build_object('topup_id', new.credit_transaction_id) || event_usd('amount', new.amount_nano_usd), new.created_at);
  end if;
  return null;
end $$;
drop trigger if exists card_topups_event on card_topups;
create constraint trigger card_topups_event after insert on card_topups
  deferrable initially deferred for each row execute function card_topups_event();

-- auto_topup.disabled: billing turned auto top-up off (src/billing/auto-topup/charges.ts writes the
-- notice in the transaction that does it).
create or replace function billing_notices_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  if new.kind = 'auto_topup_disabled' then
    perform emit_event(new.org_id, 'auto_topup.disabled', new.id,
      jsonb_build_object('reason', new.details ->> 'reason', 'message', new.details ->> 'message'), new.created_at);
  end if;
  return null;
end $$;
drop trigger if exists billing_notices_event on billing_notices;
create trigger billing_notices_event after insert on billing_notices for each row execute function billing_notices_event();

-- credit.granted: every credit grant (operator, plan, promo, referral, refund credit) is one
-- credit_grants row, inserted by grantCredits (src/billing/grants.ts) in the transaction that
-- posts its ledger transaction, so every path that grants credits tells it, once per grant.
-- The payload is what GET /v1/billing/grants shows of a grant when it is made.
create or replace function credit_grants_event() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  perform emit_event(new.org_id, 'credit.granted', new.id,
    jsonb_build_object('grant_id', new.id, 'source', new.source, 'source_id', new.source_id, 'reason', new.reason,
                       'expires_at', case when new.expires_at is null then null else event_time(new.expires_at) end,
                       'transaction_id', new.transaction_id)
      || event_usd('amount', new.amount),
    new.created_at);
  return null;
end $$;
drop trigger if exists credit_grants_event on credit_grants;
create trigger credit_grants_event after insert on credit_grants for each row execute function credit_grants_event();
