-- Promo codes: an operator makes a code worth an amount of credits; an organization redeems it
-- once (POST /v1/billing/promo-codes/redeem) and gets a credit grant (source 'promo', source_id
-- the redemption) in the same transaction as its redemption row (src/billing/promo-codes/).
create table promo_codes (
  id text primary key,
  -- Normalized (trimmed, upper case): codes are case-insensitive, so one spelling is stored.
  code text not null unique check (code ~ '^[A-Z0-9][A-Z0-9_-]{2,31}$'),
  amount nano_usd not null check (amount > 0),
  -- The code cannot be redeemed from this instant; null: never expires.
  expires_at timestamptz,
  -- Each redemption's grant expires this many days after the redemption; null: never.
  grant_expires_in_days integer check (grant_expires_in_days between 1 and 3650),
  max_redemptions integer not null check (max_redemptions between 1 and 1000000),
  -- Only for organizations that have never been credited a paid top-up (card or HUSD).
  first_top_up_only boolean not null default false,
  -- Counted in the transaction of each redemption, under this row's lock; the check is the last
  -- guard of the limit.
  redemption_count integer not null default 0 check (redemption_count >= 0 and redemption_count <= max_redemptions),
  deactivated_at timestamptz,
  created_at timestamptz not null
);

create table promo_redemptions (
  id text primary key,
  promo_code_id text not null references promo_codes(id),
  org_id text not null references organizations(id),
  amount nano_usd not null check (amount > 0),
  created_at timestamptz not null,
  -- Once per organization per code.
  unique (promo_code_id, org_id)
);
create index promo_redemptions_org on promo_redemptions (org_id, created_at);
