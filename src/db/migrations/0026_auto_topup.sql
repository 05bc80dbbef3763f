-- Auto top-up and renewals that collect (issue 14): card charges we start ourselves, off-session.
-- Every rule that keeps money from moving twice is a key or a constraint here, not only code:
--   at most one charge per crossing        auto_topup_charges.crossing_id unique
--   nothing while a charge is in flight    auto_topup_one_in_flight (one 'pending' charge per org)
--   at most monthly_limit per month        auto_topup_months: check (charged <= monthly_limit)
--   one renewal attempt per number         renewal_charges unique (invoice_id, attempt)
-- The processor's idempotency key of a charge is its crossing's id (auto top-up) or
-- renewal:<invoice>:<attempt>, so a charge retried after a lost answer is the same payment.

-- An org's auto top-up: when a debit takes its balance from at or above `threshold` to below it,
-- charge `amount` to the default card, at most `monthly_limit` per calendar month (UTC). The
-- system turns it off (enabled = false, disabled_reason) when the card needs the customer or was
-- declined three times in a row; the customer turns it on again with PUT.
create table auto_topup_settings (
  org_id text primary key references organizations(id),
  enabled boolean not null,
  threshold nano_usd not null check (threshold >= 0),
  -- Charged in cents: whole cents only (1 cent = 10^7 nano-USD).
  amount nano_usd not null check (amount > 0 and amount % 10000000 = 0),
  monthly_limit nano_usd not null check (monthly_limit >= amount),
  consecutive_declines int not null default 0 check (consecutive_declines between 0 and 3),
  disabled_reason text check (disabled_reason in ('requires_action', 'declined')),
  disabled_at timestamptz,
  updated_at timestamptz not null,
  check ((disabled_reason is null) = (disabled_at is null)),
  check (not (enabled and disabled_reason is not null))
);

-- A debit that took the balance below the auto top-up threshold: one per debit transaction,
-- written in that transaction (metering_batch, watchLowBalance through auto_topup_note_crossing).
-- A worker decides it once: charged, or skipped with the reason.
create table auto_topup_crossings (
  id text primary key,
  org_id text not null references organizations(id),
  transaction_id text not null unique references ledger_transactions(id),
  balance bigint not null,
  threshold bigint not null,
  created_at timestamptz not null,
  decided_at timestamptz,
  outcome text check (outcome in ('charged', 'skipped')),
  reason text,
  check ((decided_at is null) = (outcome is null))
);
create index auto_topup_crossings_undecided on auto_topup_crossings (created_at) where decided_at is null;
create index auto_topup_crossings_org on auto_topup_crossings (org_id, created_at);

-- One charge per crossing. 'pending' from its creation until the signed webhook credits it
-- (succeeded) or the processor refuses it (declined, requires_action); that is "in flight".
create table auto_topup_charges (
  id text primary key,
  crossing_id text not null unique references auto_topup_crossings(id),
  org_id text not null references organizations(id),
  amount nano_usd not null check (amount > 0 and amount % 10000000 = 0),
  month date not null check (extract(day from month) = 1),
  status text not null check (status in ('pending', 'succeeded', 'declined', 'requires_action')),
  processor_payment_id text unique,
  decline_code text,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create unique index auto_topup_one_in_flight on auto_topup_charges (org_id) where status = 'pending';
create index auto_topup_charges_pending on auto_topup_charges (created_at) where status = 'pending';

-- What an org's charges of a calendar month (UTC) add up to, pending and succeeded: a charge
-- reserves its amount here before it starts and gives it back when refused. The limit is the
-- one in force at the last reservation; the check holds whatever code writes.
create table auto_topup_months (
  org_id text not null references organizations(id),
  month date not null check (extract(day from month) = 1),
  charged nano_usd not null check (charged >= 0),
  monthly_limit nano_usd not null,
  primary key (org_id, month),
  check (charged <= monthly_limit)
);

-- What the customer must be told (auto top-up turned off, a renewal that failed for good): rows
-- for the notification work to deliver; until it does, a warn log line says the same.
create table billing_notices (
  id text primary key,
  org_id text not null references organizations(id),
  kind text not null check (kind in ('auto_topup_disabled', 'renewal_failed')),
  details jsonb not null default '{}',
  created_at timestamptz not null,
  emitted_at timestamptz
);
create index billing_notices_unemitted on billing_notices (created_at) where emitted_at is null;

-- Renewals that collect: an open invoice's amount due charged to the default card, attempt 1 at
-- issue, then 1, 3 and 7 days after it (src/billing/renewals/schedule.ts). An attempt is pending
-- until the webhook credits it (the credit pays the invoice) or the processor refuses it.
create table renewal_charges (
  id text primary key,
  invoice_id text not null references invoices(id),
  attempt int not null check (attempt between 1 and 4),
  org_id text not null references organizations(id),
  amount nano_usd not null check (amount > 0 and amount % 10000000 = 0),
  status text not null check (status in ('pending', 'succeeded', 'failed')),
  reason text,
  processor_payment_id text unique,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (invoice_id, attempt)
);
create unique index renewal_one_in_flight on renewal_charges (invoice_id) where status = 'pending';

-- An invoice whose last attempt failed moves its org to the free plan, once.
create table renewal_downgrades (
  invoice_id text primary key references invoices(id),
  org_id text not null references organizations(id),
  from_plan text not null,
  created_at timestamptz not null
);
