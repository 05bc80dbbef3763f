-- Usage events name their organization, their hold and their usage transaction; holds and ledger
-- transactions name their organization. Statement triggers that already run once per statement
-- now refuse a row naming one that does not exist, with the foreign-key violation's code (23503),
-- as migration 0036 did for ledger entries: usage_events_after_insert (ledger.sql), holds_reserve
-- (holds.sql) and, for a ledger transaction, ledger_assert_balanced, which reads every transaction
-- when its entries are written (a transaction without entries is refused at commit). The keys did
-- the same one row at a time: a referential-integrity query per key and row, each also locking the
-- row it found (bench/RESULTS-metering.md, 2026-12-02, night).
--
-- What a key also guarded, the referenced row's deletion or a change of its id, cannot happen: the
-- app's role has no DELETE (functions/grants.sql), transactions are append-only (their triggers
-- refuse UPDATE and DELETE), a hold keeps its id (holds_terms_fixed), and an organization keeps
-- its id (organizations_id_fixed, functions/ledger.sql).
--
-- A table with pending trigger events cannot be altered: the deferred checks of rows an earlier
-- migration of the same batch wrote (0037's transactions) run first, and the deferrable checks are
-- deferred again after (each is declared initially deferred).
set constraints all immediate;
alter table usage_events
  drop constraint usage_events_org_id_fkey,
  drop constraint usage_events_hold_id_fkey,
  drop constraint usage_events_transaction_id_fkey;
alter table holds drop constraint holds_org_id_fkey;
alter table ledger_transactions drop constraint ledger_transactions_org_id_fkey;
set constraints all deferred;
