import type { Processor } from "../../billing/auto-topup/card-charge.js";
import { decideCrossing, runAutoTopupCharge } from "../../billing/auto-topup/charges.js";
import type { BillingContext } from "../../billing/context.js";
import { refundCreditNoteToCard } from "../../billing/credit-notes/refund-to-card.js";
import { collectRenewal } from "../../billing/renewals/collect-renewal.js";
import { CardChargeJob } from "../../jobs/payloads.js";

/** A `card-charges` job: one step, decided in PostgreSQL; a processor outage throws and the job retries. */
export async function processCardCharge(ctx: BillingContext, processor: Processor | null, data: unknown) {
  const job = CardChargeJob.parse(data);
  switch (job.kind) {
    case "crossing": {
      const decision = await decideCrossing(ctx, { crossingId: job.id, processorConfigured: processor !== null });
      const chargeId = decision.outcome === "skipped" ? null : decision.chargeId;
      if (!chargeId || !processor) return decision;
      // runAutoTopupCharge does nothing for a charge already answered, so a retry is safe.
      return { ...decision, run: await runAutoTopupCharge(ctx, { chargeId, processor }) };
    }
    case "charge":
      if (!processor) return { run: "processor_not_configured" };
      return { run: await runAutoTopupCharge(ctx, { chargeId: job.id, processor }) };
    case "renewal":
      return { step: await collectRenewal(ctx, { invoiceId: job.id, processor }) };
    case "refund":
      if (!processor) return { refund: "processor_not_configured" };
      return { refund: await refundCreditNoteToCard({ ...ctx, processor }, { creditNoteId: job.id }) };
  }
}
