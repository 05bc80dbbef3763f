-- Ledger entries name their transaction and their account; the statement triggers that already
-- read both per statement (ledger_assert_balanced reads each transaction, ledger_apply_to_balance
-- each account: src/db/functions/ledger.sql) now refuse an entry naming one that does not exist,
-- with the foreign-key violation's code (23503). The foreign keys did the same one row at a time:
-- two referential-integrity queries per entry, about a quarter of the metering batch's
-- PostgreSQL time per pair (bench/RESULTS-metering.md, 2026-12-02). What a key also guarded, the
-- referenced row's deletion, cannot happen: transactions are append-only (their triggers refuse
-- UPDATE and DELETE from anyone) and the app's role has no DELETE on any table
-- (functions/grants.sql); accounts keep their id (ledger_accounts_balance_by_postings).
alter table ledger_entries
  drop constraint ledger_entries_transaction_id_fkey,
  drop constraint ledger_entries_account_id_fkey;
