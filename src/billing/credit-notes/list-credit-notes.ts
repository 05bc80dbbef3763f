import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { type CreditNote, listCreditNoteRows } from "./credit-note.js";

/**
 * The org's credit notes, newest first, with their lines; `before`: the id the previous page ended
 * with. A cursor that is none of the org's notes is refused (400, param cursor), not answered with
 * an empty page that would read as "no more notes".
 */
export async function listCreditNotes(
  ctx: BillingContext,
  input: { orgId: string; limit: number; before?: string },
): Promise<{ data: CreditNote[]; nextCursor: string | null }> {
  if (input.before !== undefined) {
    const [known] = await ctx.sql`select 1 from credit_notes where id = ${input.before} and org_id = ${input.orgId}`;
    if (!known)
      throw new BillingError("invalid_request", "cursor is not one this API returned", {
        details: { param: "cursor" },
      });
  }
  return listCreditNoteRows(ctx.sql, input);
}
