import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { toInvoice, type Invoice, type InvoiceRow } from "./invoice.js";

/** open → paid or void; anything else is refused here and by the database. */
export async function setInvoiceStatus(
  ctx: BillingContext,
  input: { id: string; status: "paid" | "void" },
): Promise<Invoice> {
  const { sql } = ctx;
  const { id, status } = input;
  const now = ctx.clock();
  const [row] = await sql<InvoiceRow[]>`select * from invoices where id = ${id}`;
  if (!row) throw new BillingError("not_found", `no invoice ${id}`);
  if (row.status !== "open")
    throw new BillingError(
      "conflict",
      `invoice ${row.number} is ${row.status}; only an open invoice can become ${status}`,
    );
  const [updated] = await sql<InvoiceRow[]>`
    update invoices set status = ${status}, paid_at = ${status === "paid" ? now : null}, voided_at = ${status === "void" ? now : null}
    where id = ${id} and status = 'open' returning *`;
  if (!updated) throw new BillingError("conflict", `invoice ${row.number} changed status concurrently`);
  return toInvoice(updated);
}
