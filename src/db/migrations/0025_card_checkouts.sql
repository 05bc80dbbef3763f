-- Card top-ups the org asked for (POST /v1/billing/topups): one row per (org, Idempotency-Key),
-- written before the processor is called, so a retry with the same key finds the same row and
-- asks the processor with the same key of ours (the row id), and gets the same Checkout Session.
-- The credit is not here: it is the `card_topup` ledger transaction keyed by the payment id
-- (card_topups), made only by the signed webhook; this row says which org the session was made
-- for, so a completed session that is not in this table is recorded and credits nothing.
create table card_checkouts (
  id text primary key,
  org_id text not null references organizations(id),
  idempotency_key text not null,
  -- sha256 of what was asked (amount, URLs): the same key with another request is refused (409).
  request_hash text not null,
  amount_cents bigint not null check (amount_cents > 0),
  currency text not null check (currency = 'usd'),
  -- The processor's Checkout Session, once it answered; null while never reached (not listed).
  session_id text unique,
  session_url text,
  -- The session's payment (pi_…), once a webhook named it: joins card_topups for the status.
  payment_id text unique,
  -- open: waiting for the customer; completed: paid (the credit is card_topups'); expired: never paid.
  status text not null default 'open' check (status in ('open', 'completed', 'expired')),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (org_id, idempotency_key)
);
create index card_checkouts_listed on card_checkouts (org_id, created_at desc, id desc) where session_id is not null;
