import { BillingError } from "../../errors.js";
import { type BillingContext, withTransaction } from "../context.js";
import { toInvoice, type Invoice, type InvoiceRow } from "./invoice.js";

/**
 * open → paid or void; anything else is refused here and by the database. An invoice with credit
 * notes is not voided: what they credited back was part of what it asked, and a void forgives
 * all of it, so both would give the same money twice. Under the invoice's row lock, the lock
 * issueCreditNote takes: a note and a void racing on one invoice, only the first happens.
 */
export async function setInvoiceStatus(
  ctx: BillingContext,
  input: { id: string; status: "paid" | "void" },
): Promise<Invoice> {
  const { id, status } = input;
  const now = ctx.clock();
  return withTransaction(ctx, async ({ sql }) => {
    const [row] = await sql<InvoiceRow[]>`select * from invoices where id = ${id} for update`;
    if (!row) throw new BillingError("not_found", `no invoice ${id}`);
    if (row.status !== "open")
      throw new BillingError(
        "conflict",
        `invoice ${row.number} is ${row.status}; only an open invoice can become ${status}`,
      );
    if (status === "void") {
      const [note] = await sql<{ number: string }[]>`
        select number from credit_notes where invoice_id = ${id} order by number limit 1`;
      if (note)
        throw new BillingError(
          "conflict",
          `invoice ${row.number} has credit notes (${note.number}): it cannot be voided; credit what is left of it instead`,
        );
    }
    const [updated] = await sql<InvoiceRow[]>`
      update invoices set status = ${status}, paid_at = ${status === "paid" ? now : null}, voided_at = ${status === "void" ? now : null}
      where id = ${id} and status = 'open' returning *`;
    if (!updated) throw new BillingError("conflict", `invoice ${row.number} changed status concurrently`);
    return toInvoice(updated);
  });
}
