-- A HUSD deposit is a transfer identified by its content within its transaction: (chain, tx hash,
-- token, from, to, value, ordinal among identical transfers of that transaction). Log indexes are
-- per block and shift when a transaction is mined again behind other logs, so the log index and
-- the block become where the deposit was last seen, not what it is.
--
-- Each credit and each reversal of a deposit is its own ledger movement, keyed by its number
-- (husd-credit:<id>:<k>, husd-reversal:<id>:<k>), so credited -> reversed -> credited again is
-- three movements. The counts live on the row and the check below ties them to the state: a
-- credited deposit has exactly one standing credit, any other none. The state machine and its
-- invariants are in src/billing/deposits/lifecycle.ts.

alter table husd_deposits
  add column ordinal int not null default 0 check (ordinal >= 0),
  add column credit_count int not null default 0,
  add column reversal_count int not null default 0;

-- Deposits recorded before: the n-th of identical transfers in a transaction, in log order.
update husd_deposits h set ordinal = o.n
from (select id, (row_number() over (partition by chain_id, tx_hash, token_address, from_address, to_address, amount order by log_index) - 1)::int as n
      from husd_deposits) o
where o.id = h.id and o.n <> 0;

-- Until now a deposit was credited at most once and reversed at most once, and the row kept both
-- transactions' ids.
update husd_deposits set credit_count = (credit_transaction_id is not null)::int, reversal_count = (reversal_transaction_id is not null)::int
where credit_transaction_id is not null or reversal_transaction_id is not null;

alter table husd_deposits
  drop constraint husd_deposits_chain_id_tx_hash_log_index_key,
  -- from_address has always been written; nulls not distinct keeps the key a key even if one is not.
  add constraint husd_deposits_identity unique nulls not distinct (chain_id, tx_hash, token_address, from_address, to_address, amount, ordinal),
  -- 'reorg': found by re-reading a transaction that moved block (new content is a new deposit).
  drop constraint husd_deposits_source_check,
  add constraint husd_deposits_source_check check (source in ('indexer', 'topup', 'reorg')),
  add constraint husd_deposits_one_standing_credit check (
    reversal_count >= 0 and credit_count - reversal_count = case when state = 'credited' then 1 else 0 end);

comment on column husd_deposits.log_index is 'where the transfer was last seen in its block; not part of its identity';
comment on column husd_deposits.credit_transaction_id is 'the latest credit; every credit is keyed husd-credit:<id>:<k>';
comment on column husd_deposits.reversal_transaction_id is 'the latest reversal; every reversal is keyed husd-reversal:<id>:<k>';
