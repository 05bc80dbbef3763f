-- A metering batch posts its usage as one ledger transaction for all of its organizations (one
-- entry per organization's credits account, one to revenue), not one per organization: for a
-- report of 500 events naming ~400 organizations that was ~400 transaction rows, ~400 revenue
-- entries and ~400 of each per-transaction check (bench/RESULTS-metering.md, 2026-12-03, fourth
-- machine). Such a transaction has no org_id; the organizations it touches are listed here, with
-- what each of them is shown of it (its own event count), so an organization's transaction list
-- (src/billing/transactions.ts) finds it through its (org_id, seq) key as it finds its own
-- transactions through ledger_transactions_org_seq.
--
-- Written by metering_post in the batch that writes the transaction (functions/metering.sql);
-- the model-based test checks that every entry on an organization's account is reachable from its
-- list one way or the other (test/model/invariants.ts). Rows are facts like the transactions they
-- list: the triggers in functions/ledger.sql refuse changes.
create table ledger_transaction_orgs (
  org_id text not null,
  seq bigint not null,            -- the transaction's seq: the list's order and cursor
  transaction_id text not null,
  created_at timestamptz not null,  -- the transaction's, for the export's date range
  metadata jsonb not null,        -- what this organization sees as the transaction's metadata
  primary key (org_id, seq)
);
