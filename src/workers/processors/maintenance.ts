import { undeliveredAlerts } from "../../billing/alerts.js";
import { at } from "../../billing/context.js";
import type { DepositContext } from "../../billing/deposits/context.js";
import { auditCreditedDeposits } from "../../billing/deposits/audit.js";
import { expireGrants } from "../../billing/grants.js";
import { expireHolds } from "../../billing/holds.js";
import { closeDueCycles } from "../../billing/invoices/close-due-cycles.js";
import { payDueReferrals } from "../../billing/referrals/pay-referrals.js";
import { referralSettings } from "../../billing/referrals/settings.js";
import { autoTopupWork } from "../../billing/auto-topup/charges.js";
import { pendingCardRefunds } from "../../billing/credit-notes/refund-to-card.js";
import { invoicesToCollect } from "../../billing/renewals/collect-renewal.js";
import { dueDeliveries, unfannedEvents } from "../../billing/webhooks/deliver.js";
import { enqueueCardCharges, enqueueDeliveries, enqueueFanOuts, resendAlerts } from "../../jobs/enqueue.js";
import { MaintenanceJob } from "../../jobs/payloads.js";
import type { Queues } from "../../jobs/queues.js";
import { ensurePartitions } from "../../db/partitions.js";
import { reconcileLedger } from "../../ledger/reconcile.js";
import { scanDeposits } from "./deposit-scan.js";

/** A `maintenance` job: one sweep, at one instant. Results are plain JSON (they are kept in Redis). */
export async function runMaintenance(
  ctx: DepositContext & { queues: Queues },
  data: unknown,
  opts: { scanEveryMs: number },
) {
  const now = ctx.clock();
  const fixed = at(ctx, now);
  switch (MaintenanceJob.parse(data).task) {
    case "expire-holds":
      return { expired: await expireHolds(fixed) };
    case "expire-grants":
      return { expired: await expireGrants(fixed) };
    case "scan-deposits":
      return scanDeposits(fixed, { scanEveryMs: opts.scanEveryMs });
    case "audit-deposits":
      return auditCreditedDeposits(fixed);
    case "close-cycles":
      return closeDueCycles(fixed);
    case "resend-alerts": {
      // Alerts whose commit notice nobody heard (no worker listening then, Redis down). The
      // grace is short: enqueuing again an alert whose job was added moments ago is harmless,
      // as the job id dedupes while the job is kept and delivery marks the row only once.
      const ids = await undeliveredAlerts(fixed, { olderThan: new Date(now.getTime() - 5_000) });
      await resendAlerts(ctx.queues, ids);
      return { resent: ids.length };
    }
    case "card-charges": {
      // Crossings whose commit notice nobody heard, charges whose processor call did not get an
      // answer (asked again with the same idempotency key), every open invoice's next step, and
      // credit notes' card refunds left pending.
      const { crossings, charges } = await autoTopupWork(fixed, { olderThan: new Date(now.getTime() - 5_000) });
      const invoices = await invoicesToCollect(fixed);
      // Credit notes' card refunds whose answer was lost and that nobody sent again.
      const refunds = await pendingCardRefunds(fixed, { olderThan: new Date(now.getTime() - 60_000) });
      await enqueueCardCharges(ctx.queues, [
        ...crossings.map((id) => ({ kind: "crossing" as const, id })),
        ...charges.map((id) => ({ kind: "charge" as const, id })),
        ...invoices.map((id) => ({ kind: "renewal" as const, id })),
        ...refunds.map((id) => ({ kind: "refund" as const, id })),
      ]);
      return {
        crossings: crossings.length,
        charges: charges.length,
        invoices: invoices.length,
        refunds: refunds.length,
      };
    }
    case "sweep-webhooks": {
      // Events whose fan-out job was lost or never made (Redis flushed, no worker listening at
      // commit), and attempts that are due (a retry's delayed job lost, a worker that died
      // holding a claim). Both are decided again in PostgreSQL, so enqueuing twice is harmless.
      const events = await unfannedEvents(fixed);
      await enqueueFanOuts(ctx.queues, events);
      const due = await dueDeliveries(fixed);
      await enqueueDeliveries(ctx.queues, due, now);
      return { fan_outs: events.length, due: due.length };
    }
    case "pay-referrals":
      // Referrals whose qualifying top-up has stood the holding period: both grants, once.
      return payDueReferrals(fixed, referralSettings(ctx.config));
    case "ensure-partitions": {
      // Months ahead of time, so no insert waits on DDL; a month whose rows went to the default
      // partition (the job had stopped) is the operator's to look at.
      const { created, inDefault } = await ensurePartitions(ctx.sql, ctx.config.PARTITION_MONTHS_AHEAD);
      if (inDefault.length > 0)
        ctx.logger.warn({ in_default: inDefault }, "months with rows in a default partition: see docs/scale.md");
      return { created, in_default: inDefault };
    }
    case "check-ledger": {
      const { mismatches, durationMs } = await reconcileLedger({ sql: ctx.sql, logger: ctx.logger }, now);
      return { mismatches, duration_ms: durationMs };
    }
  }
}
