import { formatUsd } from "../../ledger/money.js";
import type { EventType } from "./catalog.js";

/** What emitEvent takes. */
export type EventInput = { orgId: string; type: EventType; factKey: string; data: Record<string, unknown>; at: Date };

/** USD in the API's three forms (as src/http/present.ts usdFields), for event payloads made in TypeScript. */
function usdData(name: string, nano: bigint): Record<string, unknown> {
  const exact = formatUsd(nano);
  return { [name]: Number(exact), [`${name}_usd`]: exact, [`${name}_nano_usd`]: nano.toString() };
}

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
      ...usdData("amount", p.attempt.amount),
      failure_code: p.code,
    },
    at: p.now,
  };
}
