-- Referrals (issue 17): each organization's referral code, the link from a referred org to its
-- referrer, and the reward's state machine (described in src/billing/referrals/states.ts):
--
--   linked ─► qualified ─► paid ─► clawed_back        (qualifying top-up reversed after payout)
--     │           ├──────► capped ─► clawed_back      (the referrer's part over its monthly cap)
--     │           ├──────► canceled                   (qualifying top-up reversed before payout)
--     └───────────┴──────► rejected                   (self-referral: shared customer, card or wallet)
--
-- Exactly once, by keys: one referral per referred org (unique), one qualifying top-up per
-- referral and one referral per top-up (unique), and the grants keyed by the referral id.

-- An org's code, made on first use (GET /v1/billing/referrals); never changes.
create table referral_codes (
  org_id text primary key references organizations(id),
  code text not null unique check (code ~ '^[a-z0-9]{12}$'),
  created_at timestamptz not null
);

create table referrals (
  id text primary key,                                         -- rfl_…
  referrer_org_id text not null references organizations(id),
  referred_org_id text not null unique references organizations(id),
  code text not null references referral_codes(code),
  state text not null check (state in ('linked', 'qualified', 'paid', 'capped', 'canceled', 'rejected', 'clawed_back')),
  -- rejected: shared_processor_customer | shared_card | shared_wallet; canceled: qualifying_topup_reversed
  reason text,
  -- The referred org's first paid top-up that was credited: a card payment (card_topups.payment_id)
  -- or an HUSD deposit (husd_deposits.id), and its credit in the ledger.
  qualifying_kind text check (qualifying_kind in ('card', 'husd')),
  qualifying_ref text,
  qualifying_transaction_id text references ledger_transactions(id),
  qualified_at timestamptz,
  -- The rewards as paid (null: not paid, or that side's amount was configured 0 or capped).
  referrer_grant_id text unique references credit_grants(id),
  referred_grant_id text unique references credit_grants(id),
  -- The referrer's reward as decided at payout (counted against its monthly cap even when capped).
  referrer_amount nano_usd,
  referred_amount nano_usd,
  -- First day (UTC) of the calendar month whose cap the referrer's reward counts in.
  payout_month date,
  decided_at timestamptz,    -- paid, capped, rejected or canceled
  clawed_back_at timestamptz,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (referrer_org_id <> referred_org_id),
  check ((qualifying_kind is null) = (qualifying_ref is null)),
  check (state not in ('qualified', 'paid', 'capped', 'clawed_back') or qualified_at is not null),
  check (state not in ('paid', 'capped') or payout_month is not null)
);
create unique index referrals_qualifying on referrals (qualifying_kind, qualifying_ref) where qualifying_ref is not null;
create index referrals_referrer on referrals (referrer_org_id, created_at desc);
create index referrals_due on referrals (qualified_at) where state = 'qualified';
create index referrals_month on referrals (referrer_org_id, payout_month) where payout_month is not null;

-- A grant taken back by a clawback: its expires_at was brought forward to this instant, and the
-- posting of its end (the expiry rule, src/db/functions/money_rules.sql) is a 'referral_clawback'.
alter table credit_grants add column clawed_back_at timestamptz;

-- The cards each org was seen with, by the processor's fingerprint (card.fingerprint: the same
-- card number gives the same value within one processor account), from saved cards
-- (payment_method.attached/updated) and paid charges (charge.succeeded): a self-referral signal,
-- never shown.
create table card_fingerprints (
  org_id text not null references organizations(id),
  fingerprint text not null,
  seen_at timestamptz not null,
  primary key (org_id, fingerprint)
);
create index card_fingerprints_fingerprint on card_fingerprints (fingerprint);
create index husd_deposits_from on husd_deposits (from_address) where from_address is not null;
