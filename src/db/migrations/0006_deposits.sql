-- HUSD deposits: one CREATE2 deposit address per organization, and every transfer we have seen
-- to one, with the state machine seen -> confirming -> credited, or orphaned / rejected / reversed.

create table deposit_addresses (
  org_id text primary key references organizations(id),
  chain_id int not null,
  factory_address text not null,
  salt text not null,
  address text not null, -- lowercase 0x-hex
  created_at timestamptz not null default now(),
  unique (chain_id, address)
);

create table husd_deposits (
  id text primary key,
  chain_id int not null,
  tx_hash text not null,
  log_index int not null,
  block_number bigint,
  block_hash text,
  token_address text not null,
  from_address text,
  to_address text not null,
  org_id text references organizations(id),
  amount token_base_units not null,
  amount_nano_usd nano_usd, -- what is (or would be) credited: base units / 10^(decimals-9), rounded down
  state text not null check (state in ('seen', 'confirming', 'credited', 'orphaned', 'rejected', 'reversed')),
  reason text,
  source text not null check (source in ('indexer', 'topup')),
  confirmations bigint not null default 0,
  credit_transaction_id text references ledger_transactions(id),
  reversal_transaction_id text references ledger_transactions(id),
  seen_at timestamptz not null,
  final_at timestamptz,     -- when the worker first found the block final by policy
  credited_at timestamptz,
  updated_at timestamptz not null,
  -- Exactly once: one row, and so at most one credit, per log on the chain.
  unique (chain_id, tx_hash, log_index)
);
create index husd_deposits_org on husd_deposits (org_id, seen_at desc);
create index husd_deposits_pending on husd_deposits (state) where state in ('seen', 'confirming');
create index husd_deposits_credited_block on husd_deposits (chain_id, block_number) where state = 'credited';

-- Things an operator must look at; also logged at error level when written.
create table operator_alerts (
  id text primary key,
  kind text not null,
  subject text not null,
  details jsonb not null default '{}',
  created_at timestamptz not null,
  acknowledged_at timestamptz,
  unique (kind, subject)
);
