-- Undecided deposits are checked on a schedule instead of all of them on every scan
-- (src/billing/deposits/schedule.ts): a check costs RPC calls, and 10,000 pending deposits
-- checked every second would be 40,000 calls a second.
--   next_check_at     due by time: '-infinity' (at once) when recorded or seen in another block;
--                     each time a scan takes the deposit, now + 1 s doubling up to 60 s
--   check_attempts    how many times a scan has taken it since then (the backoff's exponent)
--   next_check_block  also due as soon as the chain's final edge reaches this block (its own,
--                     while it is beyond the edge): checked when it can be final, not on a timer
alter table husd_deposits
  add column next_check_at timestamptz not null default '-infinity',
  add column check_attempts int not null default 0 check (check_attempts >= 0),
  add column next_check_block bigint;

-- What a scan reads: the pending deposits due first.
create index husd_deposits_next_check on husd_deposits (next_check_at) where state in ('seen', 'confirming');

-- The scan joins Ponder's rows to these columns as stored, without lower() (which would keep it
-- from Ponder's index): Ponder writes hex lowercase, and so does every writer of ours; this
-- makes that a rule rather than a habit.
alter table deposit_addresses
  add constraint deposit_addresses_address_lowercase check (address = lower(address));
alter table husd_deposits
  add constraint husd_deposits_hex_lowercase check (
    tx_hash = lower(tx_hash) and token_address = lower(token_address) and from_address = lower(from_address)
    and to_address = lower(to_address) and block_hash = lower(block_hash));
