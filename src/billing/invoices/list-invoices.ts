import type { BillingContext } from "../context.js";
import { toInvoice, type Invoice, type InvoiceRow } from "./invoice.js";

/** The org's issued invoices, newest period first; `before` is the id the previous page ended with. */
export async function listInvoices(
  ctx: BillingContext,
  input: { orgId: string; limit: number; before?: string },
): Promise<{ data: Invoice[]; nextCursor: string | null }> {
  const { sql } = ctx;
  const rows = await sql<InvoiceRow[]>`
    select * from invoices where org_id = ${input.orgId} and status <> 'draft'
    ${input.before ? sql`and period_start < (select period_start from invoices where id = ${input.before} and org_id = ${input.orgId})` : sql``}
    order by period_start desc limit ${input.limit + 1}`;
  const page = rows.slice(0, input.limit).map(toInvoice);
  const last = page.at(-1);
  return { data: page, nextCursor: rows.length > input.limit && last ? last.id : null };
}
