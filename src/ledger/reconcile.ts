import type { Logger } from "pino";
import type { Sql } from "../db/client.js";
import { newId } from "../ids.js";
import { checkLedger, mismatchCount, type LedgerCheck } from "./check.js";

export type Reconciliation = { checkId: string; mismatches: number; durationMs: number };

type Alert = { kind: string; subject: string; details: Record<string, string> };

/** One operator alert per thing found wrong; `difference_nano_usd` is what decides whether it changed. */
function alertsOf(check: LedgerCheck): Alert[] {
  return [
    ...check.unbalancedTransactions.map((m) => ({
      kind: "ledger_unbalanced_transaction",
      subject: m.transactionId,
      details: { transaction_id: m.transactionId, difference_nano_usd: m.sum.toString() },
    })),
    ...check.balanceMismatches.map((m) => ({
      kind: "ledger_balance_mismatch",
      subject: m.accountId,
      details: {
        account_id: m.accountId,
        cached_nano_usd: m.cached.toString(),
        from_entries_nano_usd: m.fromEntries.toString(),
        difference_nano_usd: (m.cached - m.fromEntries).toString(),
      },
    })),
    ...check.heldMismatches.map((m) => ({
      kind: "ledger_held_mismatch",
      subject: m.orgId,
      details: {
        org_id: m.orgId,
        held_nano_usd: m.held.toString(),
        live_holds_nano_usd: m.liveHolds.toString(),
        difference_nano_usd: (m.held - m.liveHolds).toString(),
      },
    })),
  ];
}

/**
 * Runs checkLedger, records the run (for /metrics) and, when anything is wrong, writes an
 * operator alert per transaction, account or organization and one error log line. A mismatch
 * still there at the next run keeps its alert (details refreshed); if its difference changed,
 * the alert is opened again even if an operator had acknowledged it.
 */
export async function reconcileLedger(deps: { sql: Sql; logger: Logger }, now: Date): Promise<Reconciliation> {
  const started = performance.now();
  const check = await checkLedger(deps.sql);
  const durationMs = Math.round(performance.now() - started);
  const alerts = alertsOf(check).map((a) => ({ ...a, id: newId("alert") }));
  const checkId = await deps.sql.begin(async (tx) => {
    const [run] = await tx<{ id: bigint }[]>`
      insert into ledger_checks (checked_at, duration_ms, unbalanced_transactions, balance_mismatches, held_mismatches)
      values (${now}, ${durationMs}, ${check.unbalancedTransactions.length}, ${check.balanceMismatches.length}, ${check.heldMismatches.length})
      returning id`;
    if (alerts.length > 0) {
      await tx`
        insert into operator_alerts (id, kind, subject, details, created_at)
        select id, kind, subject, details, ${now} from jsonb_to_recordset(${tx.json(alerts as never)}) as a(id text, kind text, subject text, details jsonb)
        on conflict (kind, subject) do update set
          details = excluded.details,
          acknowledged_at = case when operator_alerts.details->'difference_nano_usd' = excluded.details->'difference_nano_usd' then operator_alerts.acknowledged_at end`;
    }
    if (!run) throw new Error("reconciliation run row was not returned by its insert");
    return String(run.id);
  });
  const counts = {
    unbalanced_transactions: check.unbalancedTransactions.length,
    balance_mismatches: check.balanceMismatches.length,
    held_mismatches: check.heldMismatches.length,
  };
  const mismatches = mismatchCount(check);
  if (mismatches > 0) {
    // The first few of each kind; the rest are in operator_alerts.
    const examples = alertsOf({
      unbalancedTransactions: check.unbalancedTransactions.slice(0, 10),
      balanceMismatches: check.balanceMismatches.slice(0, 10),
      heldMismatches: check.heldMismatches.slice(0, 10),
    }).map((a) => ({ kind: a.kind, ...a.details }));
    deps.logger.error(
      { ledger_check_id: checkId, ...counts, examples, duration_ms: durationMs },
      "ledger check found mismatches: operator attention needed (see operator_alerts)",
    );
  } else {
    deps.logger.info({ ledger_check_id: checkId, duration_ms: durationMs }, "ledger check: consistent");
  }
  return { checkId, mismatches, durationMs };
}
