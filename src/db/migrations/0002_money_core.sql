-- Organizations, API keys and the double-entry ledger.

create table organizations (
  id text primary key,
  name text not null check (length(name) between 1 and 200),
  low_balance_threshold nano_usd not null default 10000000000 check (low_balance_threshold >= 0),
  created_at timestamptz not null default now()
);

-- Keys are stored only as a SHA-256 of the full key: they are 240-bit random strings, so a
-- fast hash is as strong as a slow one and keeps lookups on the hot path cheap.
create table api_keys (
  id text primary key,
  org_id text not null references organizations(id),
  scope text not null check (scope in ('org', 'gateway', 'admin')),
  key_hash bytea not null unique,
  key_prefix text not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index api_keys_org_idx on api_keys (org_id);

-- Accounts: one 'credits' account per organization (what it can spend), one 'held' account per
-- organization (amounts reserved by live holds), and system accounts for the other side of
-- every movement. `balance` is a cache kept by a trigger; ledger_check() recomputes it.
create table ledger_accounts (
  id text primary key,
  org_id text references organizations(id),
  kind text not null check (kind in ('org_credits', 'org_held', 'system')),
  balance nano_usd not null default 0,
  check ((kind = 'system') = (org_id is null))
);
create unique index ledger_accounts_org_kind on ledger_accounts (org_id, kind) where org_id is not null;

insert into ledger_accounts (id, kind) values
  ('system:grants', 'system'),          -- promotional and operator credit grants
  ('system:grant_expiry', 'system'),    -- unused grant amounts taken back at expiry
  ('system:husd', 'system'),            -- HUSD received on chain
  ('system:card', 'system'),            -- card payments through the processor
  ('system:revenue', 'system');         -- priced usage and subscriptions

-- One row per movement. The idempotency key is the real exactly-once guarantee: a retried or
-- racing request finds the first row instead of moving money twice.
create table ledger_transactions (
  id text primary key,
  seq bigint generated always as identity unique, -- commit-independent order for history pages
  org_id text references organizations(id),
  kind text not null check (kind in ('grant', 'grant_expiry', 'husd_deposit', 'card_topup', 'hold', 'release',
                                     'usage', 'invoice_settlement', 'reversal')),
  idempotency_key text not null,
  request_fingerprint text,
  description text,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  unique (kind, idempotency_key)
);
create index ledger_transactions_org_seq on ledger_transactions (org_id, seq desc);

create table ledger_entries (
  id bigint generated always as identity primary key,
  transaction_id text not null references ledger_transactions(id),
  account_id text not null references ledger_accounts(id),
  amount nano_usd not null check (amount <> 0),
  created_at timestamptz not null default now()
);
create index ledger_entries_txn_idx on ledger_entries (transaction_id);
create index ledger_entries_account_idx on ledger_entries (account_id);

-- Every transaction must balance. Checked per statement over all entries of the transactions
-- the statement touched, so a transaction's entries are written in one statement (as
-- postTransaction does) and nothing can ever add an entry that unbalances it later.
create function ledger_assert_balanced() returns trigger language plpgsql as $$
declare
  bad record;
begin
  select e.transaction_id, sum(e.amount) as total, count(*) as n into bad
  from ledger_entries e
  where e.transaction_id in (select distinct transaction_id from inserted)
  group by e.transaction_id
  having sum(e.amount) <> 0 or count(*) < 2
  limit 1;
  if found then
    raise exception 'ledger transaction % is unbalanced: % entries summing to %', bad.transaction_id, bad.n, bad.total
      using errcode = 'check_violation';
  end if;
  return null;
end $$;
create trigger ledger_entries_balanced after insert on ledger_entries
  referencing new table as inserted for each statement execute function ledger_assert_balanced();

-- A transaction with no entries at all is refused as well.
create function ledger_assert_has_entries() returns trigger language plpgsql as $$
begin
  if not exists (select 1 from ledger_entries where transaction_id = new.id) then
    raise exception 'ledger transaction % has no entries', new.id using errcode = 'check_violation';
  end if;
  return null;
end $$;
create constraint trigger ledger_transactions_have_entries after insert on ledger_transactions
  deferrable initially deferred for each row execute function ledger_assert_has_entries();

-- Entries and transactions are facts: corrections are new reversing transactions, never edits.
create function ledger_refuse_change() returns trigger language plpgsql as $$
begin
  raise exception '% is append-only: % refused', tg_table_name, tg_op using errcode = 'insufficient_privilege';
end $$;
create trigger ledger_entries_immutable before update or delete on ledger_entries
  for each row execute function ledger_refuse_change();
create trigger ledger_entries_no_truncate before truncate on ledger_entries
  for each statement execute function ledger_refuse_change();
create trigger ledger_transactions_immutable before update or delete on ledger_transactions
  for each row execute function ledger_refuse_change();
create trigger ledger_transactions_no_truncate before truncate on ledger_transactions
  for each statement execute function ledger_refuse_change();

-- Keep the balance cache of organization accounts in the same statement as the entries, one
-- update per account per statement (batched postings touch each account once).
-- System accounts are left uncached on purpose: every org's usage credits system:revenue, and
-- one hot row updated by every request would serialize all organizations behind it.
create function ledger_apply_to_balance() returns trigger language plpgsql as $$
begin
  update ledger_accounts a set balance = a.balance + s.total
  from (select account_id, sum(amount) as total from inserted group by account_id) s
  where a.id = s.account_id and a.kind <> 'system';
  return null;
end $$;
create trigger ledger_entries_apply after insert on ledger_entries
  referencing new table as inserted for each statement execute function ledger_apply_to_balance();

-- Credit grants: a grant is a ledger transaction plus this row, which tracks how much of it
-- has been consumed so that an expiring grant stops counting exactly when it expires.
create table credit_grants (
  id text primary key,
  org_id text not null references organizations(id),
  transaction_id text not null unique references ledger_transactions(id),
  amount nano_usd not null check (amount > 0),
  consumed nano_usd not null default 0 check (consumed >= 0 and consumed <= amount),
  reason text not null,
  expires_at timestamptz,
  -- Set when the expiry has been posted; the amount taken back may be less than the unused
  -- part when the balance is already lower (it is never taken below zero).
  expired_at timestamptz,
  expired_amount nano_usd,
  created_at timestamptz not null default now()
);
create index credit_grants_expiring on credit_grants (org_id, expires_at) where expires_at is not null and expired_at is null;
