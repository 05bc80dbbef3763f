import type { BillingContext } from "../context.js";
import { type CreditNote, loadCreditNote } from "./credit-note.js";

/** One credit note of the org, with its lines. Another org's note is simply not found. */
export async function getCreditNote(ctx: BillingContext, input: { orgId: string; id: string }): Promise<CreditNote> {
  return loadCreditNote(ctx.sql, input);
}
