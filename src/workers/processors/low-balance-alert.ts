import type { Logger } from "pino";
import type { Sql } from "../../db/client.js";
import { formatUsd } from "../../ledger/money.js";

/**
 * Delivers one low-balance alert. Today delivery is a structured warn log that the operator's
 * log pipeline routes to the org's contacts; marking it delivered is conditional, so a
 * duplicate job delivers nothing twice.
 */
export async function deliverLowBalanceAlert(
  deps: { sql: Sql; logger: Logger; now: () => Date },
  alertId: string,
): Promise<"delivered" | "already_delivered" | "unknown"> {
  const [alert] = await deps.sql<{ org_id: string; balance: bigint; threshold: bigint }[]>`
    update balance_alerts set delivered_at = ${deps.now()} where id = ${alertId} and delivered_at is null
    returning org_id, balance, threshold`;
  if (!alert) {
    const [exists] = await deps.sql`select 1 from balance_alerts where id = ${alertId}`;
    return exists ? "already_delivered" : "unknown";
  }
  deps.logger.warn(
    {
      alert_id: alertId,
      org_id: alert.org_id,
      balance_usd: formatUsd(alert.balance),
      threshold_usd: formatUsd(alert.threshold),
    },
    "organization balance fell below its low-balance threshold",
  );
  return "delivered";
}

/** Alerts whose job was lost (Redis flushed, enqueue failed after commit): found again from PostgreSQL. */
export async function undeliveredAlerts(sql: Sql, olderThan: Date, limit = 1000): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from balance_alerts where delivered_at is null and created_at <= ${olderThan} order by created_at limit ${limit}`;
  return rows.map((r) => r.id);
}
