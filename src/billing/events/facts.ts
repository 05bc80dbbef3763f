import { usdFields } from "../../ledger/money.js";
import type { EventType } from "./catalog.js";

/** What emitEvent takes. */
export type EventInput = { orgId: string; type: EventType; factKey: string; data: Record<string, unknown>; at: Date };

/** invoice.payment_failed: one charge of an open invoice refused by the card (one event per attempt). */
export function invoicePaymentFailedEvent(p: {
  invoice: { id: string; org_id: string; number: string };
  attempt: { id: string; attempt: number; amount: bigint };
  code: string;
  now: Date;
}): EventInput {
  return {
    orgId: p.invoice.org_id,
    type: "invoice.payment_failed",
    factKey: p.attempt.id,
    data: {
      invoice_id: p.invoice.id,
      number: p.invoice.number,
      attempt: p.attempt.attempt,
      ...usdFields("amount", p.attempt.amount),
      failure_code: p.code,
    },
    at: p.now,
  };
}
