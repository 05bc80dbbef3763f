-- Reconciliation runs of the ledger (src/ledger/reconcile.ts, on the maintenance queue every
-- LEDGER_CHECK_INTERVAL_MS). /metrics reads the latest row, so every API replica reports the same
-- last run whichever worker made it. What a run found goes to operator_alerts (migration 0006,
-- kinds ledger_*), one row per transaction, account or organization, not one per run.
create table ledger_checks (
  id bigint generated always as identity primary key,
  checked_at timestamptz not null,
  duration_ms int not null check (duration_ms >= 0),
  unbalanced_transactions int not null,
  balance_mismatches int not null,
  held_mismatches int not null
);
