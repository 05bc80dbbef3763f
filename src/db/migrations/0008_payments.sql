-- Card payments through the processor: which processor customer is which organization, the
-- org's saved cards (masked), card top-ups with what has been reversed of them, and every
-- processor event we have handled. Processor ids are stored here and never leave the server.
-- The ledger kinds this needs ('card_topup', 'reversal') already exist since 0002.

-- A link is made by an operator (PUT /v1/admin/orgs/{id}/processor-customer) and is permanent:
-- one customer per organization and one organization per customer, so an event can never
-- credit or describe the wrong organization.
create table processor_customers (
  org_id text primary key references organizations(id),
  customer_id text not null unique,
  -- The customer's invoice_settings.default_payment_method (a processor id) as of the newest
  -- customer event seen: a card attached after its customer.updated still becomes the default.
  default_payment_method text,
  default_set_at timestamptz, -- event time of that customer event; older events do not override it
  linked_at timestamptz not null
);

-- Only what the API shows (brand, last4, expiry, default) plus the processor's opaque id to
-- match later events. `id` is ours (pm_…), the only id a client ever sees.
create table payment_methods (
  id text primary key,
  org_id text not null references organizations(id),
  processor_id text not null unique,
  brand text not null,
  last4 text not null check (last4 ~ '^[0-9]{4}$'),
  exp_month int not null check (exp_month between 1 and 12),
  exp_year int not null check (exp_year between 1970 and 9999),
  is_default boolean not null default false,
  -- Event time of the newest event applied, so a late, older event cannot undo a newer one.
  processor_event_at timestamptz not null,
  -- A detached method can never be attached again at the processor, so detaching is final; the
  -- row stays as a tombstone so that a late `attached` event cannot bring the card back.
  detached_at timestamptz,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (not (is_default and detached_at is not null))
);
create index payment_methods_org on payment_methods (org_id, created_at) where detached_at is null;
-- At most one default per organization, whatever order events arrive in.
create unique index payment_methods_one_default on payment_methods (org_id) where is_default;

-- One row per processor payment (pi_…) that reached us with a known organization; the ledger's
-- (card_topup, payment id) key is the money guarantee, this row is the state operators read.
create table card_topups (
  payment_id text primary key,
  charge_id text unique, -- the payment's charge, to match disputes and refunds that name only it
  org_id text not null references organizations(id),
  currency text not null,
  amount_minor bigint not null check (amount_minor > 0), -- as the processor sent it (cents for usd)
  amount_nano_usd nano_usd check (amount_nano_usd > 0), -- what was credited; null when refused
  state text not null check (state in ('credited', 'partially_reversed', 'reversed', 'refused')),
  reason text, -- why it was refused
  credit_transaction_id text references ledger_transactions(id),
  -- charge.amount_refunded (cents) as of the newest refund applied: refunds are applied as the
  -- growth of this cumulative amount, which makes their order of arrival irrelevant.
  refunded_minor bigint not null default 0 check (refunded_minor >= 0),
  reversed_nano_usd nano_usd not null default 0 check (reversed_nano_usd >= 0),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check ((state = 'refused') = (amount_nano_usd is null)),
  check (reversed_nano_usd <= coalesce(amount_nano_usd, 0))
);
create index card_topups_org on card_topups (org_id, created_at desc);

-- Every verified event, once: the processor's event id is the key, so a redelivery (or a
-- concurrent duplicate, which waits on this key) changes nothing.
create table processor_events (
  id text primary key,
  type text not null,
  livemode boolean not null,
  event_created_at timestamptz not null,
  received_at timestamptz not null,
  -- credited, already_credited, refused_currency, unknown_customer, reversed, nothing_to_reverse,
  -- awaiting_payment, applied_after_payment, not_credited, payment_method_saved, … (see
  -- src/billing/payments/events.ts)
  outcome text not null,
  org_id text references organizations(id),
  -- For a refund or dispute that arrived before its payment: the pi_/ch_ it waits for, and what
  -- to apply once the payment is credited.
  awaiting_ref text,
  details jsonb not null default '{}'
);
create index processor_events_awaiting on processor_events (awaiting_ref) where outcome = 'awaiting_payment';
