import { deliverLowBalanceAlert, type AlertDelivery } from "../../billing/alerts.js";
import type { BillingContext } from "../../billing/context.js";
import { LowBalanceAlertJob } from "../../jobs/payloads.js";

/** A `low-balance-alerts` job: deliver the alert it names. */
export async function processLowBalanceAlert(ctx: BillingContext, data: unknown): Promise<AlertDelivery> {
  return deliverLowBalanceAlert(ctx, { alertId: LowBalanceAlertJob.parse(data).alert_id });
}
