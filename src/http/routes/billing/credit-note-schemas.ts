import { z } from "@hono/zod-openapi";
import type { CreditNote } from "../../../billing/credit-notes/credit-note.js";
import { usdFields } from "../../present.js";
import { BillingDetailsJson } from "./schemas.js";

const usdTriple = (name: string) => ({
  [name]: z.number().openapi({ description: `USD, for display; exact: ${name}_usd` }),
  [`${name}_usd`]: z.string().openapi({ description: "Exact decimal USD" }),
  [`${name}_nano_usd`]: z.string().openapi({ description: "Exact, integer nano-USD" }),
});

export const CreditNoteJson = z
  .object({
    id: z.string().openapi({ example: "cn_4fJ2kQ9x0cT1mB7rW3yZ" }),
    number: z.string().openapi({ example: "CN-000001" }),
    invoice_id: z.string(),
    invoice_number: z.string().openapi({ example: "INV-000123" }),
    invoice_period: z.object({ start: z.string(), end: z.string() }),
    reason: z.string(),
    refund: z.enum(["credits", "card"]).openapi({ description: "How the total goes back" }),
    currency: z.literal("USD"),
    ...usdTriple("total"),
    lines: z.array(z.object({ description: z.string(), ...usdTriple("amount") })),
    billing_details: BillingDetailsJson.nullable().openapi({
      description: "The organization's billing details when the note was issued (null: none were set then)",
    }),
    issued_at: z.string(),
    grant_id: z.string().nullable().openapi({ description: "refund credits: the credit grant it made" }),
    card_refund: z
      .object({ status: z.enum(["pending", "succeeded", "failed"]), failure: z.string().nullable() })
      .nullable()
      .openapi({ description: "refund card: the refund at the processor (pending until it answers)" }),
  })
  .openapi("CreditNote");
export type CreditNoteJson = z.infer<typeof CreditNoteJson>;

export function creditNoteJson(n: CreditNote): CreditNoteJson {
  return {
    id: n.id,
    number: n.number,
    invoice_id: n.invoiceId,
    invoice_number: n.invoiceNumber,
    invoice_period: { start: n.invoicePeriodStart.toISOString(), end: n.invoicePeriodEnd.toISOString() },
    reason: n.reason,
    refund: n.refundMethod,
    currency: "USD" as const,
    ...usdFields("total", n.total),
    lines: n.lines.map((l) => ({ description: l.description, ...usdFields("amount", l.amount) })),
    billing_details: n.billingDetails,
    issued_at: n.issuedAt.toISOString(),
    grant_id: n.grantId,
    card_refund: n.cardRefund,
  } as CreditNoteJson;
}
