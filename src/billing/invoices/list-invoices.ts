import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { toInvoice, type Invoice, type InvoiceRow } from "./invoice.js";

/**
 * The org's issued invoices, newest period first; `before` is the id the previous page ended with.
 * A cursor that is none of the org's issued invoices is refused (400, param cursor), not answered
 * with an empty page that would read as "no more invoices".
 */
export async function listInvoices(
  ctx: BillingContext,
  input: { orgId: string; limit: number; before?: string },
): Promise<{ data: Invoice[]; nextCursor: string | null }> {
  const { sql } = ctx;
  if (input.before !== undefined) {
    const [known] =
      await sql`select 1 from invoices where id = ${input.before} and org_id = ${input.orgId} and status <> 'draft'`;
    if (!known)
      throw new BillingError("invalid_request", "cursor is not one this API returned", {
        details: { param: "cursor" },
      });
  }
  const rows = await sql<InvoiceRow[]>`
    select * from invoices where org_id = ${input.orgId} and status <> 'draft'
    ${input.before ? sql`and period_start < (select period_start from invoices where id = ${input.before} and org_id = ${input.orgId})` : sql``}
    order by period_start desc limit ${input.limit + 1}`;
  const page = rows.slice(0, input.limit).map(toInvoice);
  const last = page.at(-1);
  return { data: page, nextCursor: rows.length > input.limit && last ? last.id : null };
}
