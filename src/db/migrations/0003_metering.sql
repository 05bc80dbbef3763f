-- Pricing catalog, holds (authorizations), usage events and low-balance alerts.

-- A catalog version is immutable once loaded; usage is priced by the version in force at the
-- usage's own timestamp, so re-pricing history is impossible by construction.
create table catalog_versions (
  version text primary key,
  effective_at timestamptz not null unique,
  checksum text not null,
  document jsonb not null,
  loaded_at timestamptz not null default now()
);

create table catalog_rates (
  version text not null references catalog_versions(version),
  product text not null,
  model text not null default '', -- '' for products priced without a model
  meter text not null,
  rate numeric not null check (rate >= 0),
  primary key (version, product, model, meter)
);

create table catalog_plans (
  version text not null references catalog_versions(version),
  plan_id text not null,
  name text not null,
  monthly_price nano_usd not null check (monthly_price >= 0),
  included_credits nano_usd not null check (included_credits >= 0),
  primary key (version, plan_id)
);

create function catalog_refuse_change() returns trigger language plpgsql as $$
begin
  raise exception 'catalog version rows are immutable: publish a new version instead' using errcode = 'insufficient_privilege';
end $$;
create trigger catalog_versions_immutable before update or delete on catalog_versions for each row execute function catalog_refuse_change();
create trigger catalog_rates_immutable before update or delete on catalog_rates for each row execute function catalog_refuse_change();
create trigger catalog_plans_immutable before update or delete on catalog_plans for each row execute function catalog_refuse_change();

-- A hold reserves part of an org's credits for a request in flight. The money itself moves in
-- the ledger (org credits -> org held); this row says why and until when.
create table holds (
  id text primary key,
  org_id text not null references organizations(id),
  amount nano_usd not null check (amount >= 0),
  status text not null check (status in ('active', 'settled', 'expired', 'released')),
  idempotency_key text,
  product text not null,
  model text not null default '',
  estimate jsonb not null,
  catalog_version text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  closed_at timestamptz,
  -- Null for a zero-amount hold. Deferred: a batch writes holds and their postings together.
  transaction_id text references ledger_transactions(id) deferrable initially deferred,
  close_transaction_id text references ledger_transactions(id) deferrable initially deferred
);
create unique index holds_idempotency on holds (org_id, idempotency_key) where idempotency_key is not null;
create index holds_active_expiry on holds (expires_at) where status = 'active';
create index holds_active_org on holds (org_id, expires_at) where status = 'active';

-- One row per metered event; (org, idempotency key) is the exactly-once guarantee.
create table usage_events (
  id text primary key,
  org_id text not null references organizations(id),
  idempotency_key text not null,
  occurred_at timestamptz not null,
  product text not null,
  model text not null default '',
  quantities jsonb not null,
  cost nano_usd not null check (cost >= 0),
  catalog_version text not null,
  hold_id text references holds(id),
  -- Null only for a free event that released no hold: nothing moved.
  transaction_id text references ledger_transactions(id) deferrable initially deferred,
  recorded_at timestamptz not null,
  unique (org_id, idempotency_key)
);
create index usage_events_org_time on usage_events (org_id, occurred_at);

create function usage_refuse_change() returns trigger language plpgsql as $$
begin
  raise exception 'usage events are append-only' using errcode = 'insufficient_privilege';
end $$;
create trigger usage_events_immutable before update or delete on usage_events for each row execute function usage_refuse_change();

-- A downward crossing of the org's low-balance threshold. Written in the same transaction as
-- the debit that crossed it (so exactly one per crossing); the queue only delivers it.
create table balance_alerts (
  id text primary key,
  org_id text not null references organizations(id),
  balance nano_usd not null,
  threshold nano_usd not null,
  transaction_id text not null references ledger_transactions(id),
  created_at timestamptz not null,
  delivered_at timestamptz
);
create index balance_alerts_undelivered on balance_alerts (created_at) where delivered_at is null;
