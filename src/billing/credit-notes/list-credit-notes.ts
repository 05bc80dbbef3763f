import type { BillingContext } from "../context.js";
import { type CreditNote, listCreditNoteRows } from "./credit-note.js";

/** The org's credit notes, newest first, with their lines; `before`: the id the previous page ended with. */
export async function listCreditNotes(
  ctx: BillingContext,
  input: { orgId: string; limit: number; before?: string },
): Promise<{ data: CreditNote[]; nextCursor: string | null }> {
  return listCreditNoteRows(ctx.sql, input);
}
