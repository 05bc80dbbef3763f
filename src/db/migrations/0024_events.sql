-- Customer events: the outbox and event log (billing_events), and the webhook endpoints that
-- receive them with their deliveries and attempts (issue 15).
--
-- An event is written in the same transaction as the fact it tells (a ledger posting, a deposit's
-- state change, an invoice's issue), by the functions in src/db/functions/events.sql: a rolled-back
-- fact leaves no event, and a committed one always has it, whatever happens to Redis or a worker
-- afterwards. (type, fact_key) is the fact's identity: one event per fact, however often or
-- concurrently the code that makes the fact runs.
create table billing_events (
  id text primary key,                                   -- evt_…, what receivers dedupe on
  seq bigint generated always as identity unique,        -- the log's order (newest first) and cursor
  org_id text not null references organizations(id),
  type text not null check (type ~ '^[a-z_]+\.[a-z_]+$'),
  fact_key text not null,
  data jsonb not null,
  created_at timestamptz not null,
  fanned_out_at timestamptz,                             -- deliveries made for the endpoints of the moment
  unique (type, fact_key)
);
create index billing_events_org_seq on billing_events (org_id, seq desc);
create index billing_events_org_type_seq on billing_events (org_id, type, seq desc);
create index billing_events_unfanned on billing_events (seq) where fanned_out_at is null;

-- A customer's receiver. The app role cannot delete rows: a removed endpoint is deleted_at.
-- `secret` signs every delivery; after a rotation `previous_secret` signs too (a second signature
-- in the header) until previous_secret_expires_at, so a receiver can switch without a gap.
create table webhook_endpoints (
  id text primary key,                                   -- wh_…
  org_id text not null references organizations(id),
  url text not null,
  events text[] not null default '{}',                   -- types it wants; empty: every type
  enabled boolean not null default true,
  secret text not null,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  failing_since timestamptz,                             -- first failure of the current streak
  disabled_reason text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  deleted_at timestamptz
);
create index webhook_endpoints_org on webhook_endpoints (org_id, created_at) where deleted_at is null;

-- One delivery per event and endpoint; its attempts follow the schedule in
-- src/billing/webhooks/schedule.ts. A worker claims an attempt (claimed_until) before sending it,
-- so two workers never send one attempt twice.
create table webhook_deliveries (
  id text primary key,                                   -- dlv_…
  event_id text not null references billing_events(id),
  endpoint_id text not null references webhook_endpoints(id),
  org_id text not null references organizations(id),
  status text not null check (status in ('pending', 'delivered', 'failed')),
  attempts int not null default 0,
  next_attempt_at timestamptz,
  claimed_until timestamptz,
  last_status_code int,
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz not null,
  unique (endpoint_id, event_id),
  check ((status = 'pending') = (next_attempt_at is not null))
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_event on webhook_deliveries (event_id);

-- Every attempt, as sent: the delivery log (append-only).
create table webhook_attempts (
  id bigint generated always as identity primary key,
  delivery_id text not null references webhook_deliveries(id),
  attempt int not null,
  status_code int,
  error text,
  response_excerpt text,                                  -- the first 1,000 characters of the body
  started_at timestamptz not null,
  duration_ms int not null,
  unique (delivery_id, attempt)
);
