import { formatUsd } from "../ledger/money.js";
import type { BillingContext } from "./context.js";

export type AlertDelivery = "delivered" | "already_delivered" | "unknown";

/**
 * Delivers one low-balance alert. Today delivery is a structured warn log that the operator's
 * log pipeline routes to the org's contacts; marking it delivered is conditional, so a
 * duplicate job delivers nothing twice.
 */
export async function deliverLowBalanceAlert(ctx: BillingContext, input: { alertId: string }): Promise<AlertDelivery> {
  const { sql } = ctx;
  const { alertId } = input;
  const [alert] = await sql<{ org_id: string; balance: bigint; threshold: bigint }[]>`
    update balance_alerts set delivered_at = ${ctx.clock()} where id = ${alertId} and delivered_at is null
    returning org_id, balance, threshold`;
  if (!alert) {
    const [exists] = await sql`select 1 from balance_alerts where id = ${alertId}`;
    return exists ? "already_delivered" : "unknown";
  }
  ctx.logger.warn(
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
export async function undeliveredAlerts(
  ctx: BillingContext,
  input: { olderThan: Date; limit?: number },
): Promise<string[]> {
  const rows = await ctx.sql<{ id: string }[]>`
    select id from balance_alerts where delivered_at is null and created_at <= ${input.olderThan}
    order by created_at limit ${input.limit ?? 1000}`;
  return rows.map((r) => r.id);
}
