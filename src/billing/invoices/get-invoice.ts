import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { toInvoice, type Invoice, type InvoiceLine, type InvoiceRow } from "./invoice.js";

/** One issued invoice of the org, with its lines. Another org's invoice is simply not found. */
export async function getInvoice(ctx: BillingContext, input: { orgId: string; id: string }): Promise<Invoice> {
  const { sql } = ctx;
  const [row] = await sql<
    InvoiceRow[]
  >`select * from invoices where id = ${input.id} and org_id = ${input.orgId} and status <> 'draft'`;
  if (!row) throw new BillingError("not_found", `no invoice ${input.id}`);
  const lines = await sql<
    {
      kind: InvoiceLine["kind"];
      product: string | null;
      model: string | null;
      description: string;
      quantities: Record<string, string>;
      amount: bigint;
      period_start: Date | null;
      period_end: Date | null;
    }[]
  >`
    select kind, product, model, description, quantities, amount, period_start, period_end from invoice_lines where invoice_id = ${input.id} order by id`;
  return {
    ...toInvoice(row),
    lines: lines.map((l) => ({
      kind: l.kind,
      product: l.product,
      model: l.model,
      description: l.description,
      quantities: l.quantities,
      amount: l.amount,
      periodStart: l.period_start,
      periodEnd: l.period_end,
    })),
  };
}
