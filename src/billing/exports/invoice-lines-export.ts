import type { BillingContext } from "../context.js";
import type { InvoiceLine, InvoiceStatus } from "../invoices/invoice.js";
import { cursorBatches } from "./cursor-batches.js";
import type { ExportPeriod } from "./export-period.js";

/** One invoice line with its invoice, as the export shows it; quantities in the order of `meters`. */
export type InvoiceLineRow = {
  invoice_id: string;
  invoice_number: string;
  invoice_status: InvoiceStatus;
  invoice_period_start: Date;
  invoice_period_end: Date;
  issued_at: Date | null;
  kind: InvoiceLine["kind"];
  product: string | null;
  model: string | null;
  description: string;
  /** Each meter's quantity as exact integer text, '' where not measured. */
  quantities: string[];
  amount: bigint;
  period_start: Date | null;
  period_end: Date | null;
};

/**
 * The lines of every issued invoice of the org (as GET /v1/billing/invoices lists them: any
 * status but draft) whose period overlaps [start, end), oldest invoice first, lines in their
 * invoice's order, in batches through a cursor.
 */
export async function* invoiceLinesForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod; meters: readonly string[] },
): AsyncGenerator<InvoiceLineRow[]> {
  const { sql } = ctx;
  const query = sql<InvoiceLineRow[]>`
    select i.id as invoice_id, i.number as invoice_number, i.status as invoice_status,
      i.period_start as invoice_period_start, i.period_end as invoice_period_end, i.issued_at,
      l.kind, l.product, l.model, l.description, l.amount, l.period_start, l.period_end,
      array(select coalesce(l.quantities ->> m, '') from unnest(${input.meters as string[]}::text[]) with ordinality u(m, pos) order by pos) as quantities
    from invoices i join invoice_lines l on l.invoice_id = i.id
    where i.org_id = ${input.orgId} and i.status <> 'draft'
      and i.period_start < ${input.period.end} and i.period_end > ${input.period.start}
    order by i.period_start, i.id, l.id`;
  yield* cursorBatches(query, (line) => line);
}
