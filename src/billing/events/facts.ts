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

/** credit_note.issued: one per credit note, written in the transaction that issues it. */
export function creditNoteIssuedEvent(n: {
  id: string;
  number: string;
  orgId: string;
  invoiceId: string;
  invoiceNumber: string;
  reason: string;
  refundMethod: "credits" | "card";
  total: bigint;
  issuedAt: Date;
}): EventInput {
  return {
    orgId: n.orgId,
    type: "credit_note.issued",
    factKey: n.id,
    data: {
      credit_note_id: n.id,
      number: n.number,
      invoice_id: n.invoiceId,
      invoice_number: n.invoiceNumber,
      reason: n.reason,
      refund: n.refundMethod,
      ...usdFields("total", n.total),
    },
    at: n.issuedAt,
  };
}
