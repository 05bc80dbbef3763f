import type { TransactionSql } from "../../db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";

/**
 * A top-up (card or HUSD) pays the org's open invoices before it adds to credits: called in the
 * transaction that posts the credit, right after it, with the amount credited. Invoices are paid
 * whole, oldest period first (`first`, the invoice a renewal charge was made for, goes before
 * them); one the rest of the top-up cannot cover is left open and the next older-first one that
 * fits is tried. Each payment is an `invoice_settlement` transaction (credits → revenue) keyed
 * `paid:<invoice>`, so an invoice is paid from credits at most once, and the invoice becomes
 * `paid` in the same statement order under its row lock: two top-ups racing pay it once.
 * What is left of the top-up stays in credits.
 */
export async function settleOpenInvoices(
  tx: TransactionSql,
  input: { orgId: string; amount: bigint; now: Date; source: string; first?: string | null },
): Promise<{ paid: string[]; spent: bigint }> {
  const { orgId, now } = input;
  let left = input.amount;
  const paid: string[] = [];
  if (left <= 0n) return { paid, spent: 0n };
  const open = await tx<{ id: string; number: string; amount_due: bigint }[]>`
    select id, number, amount_due from invoices where org_id = ${orgId} and status = 'open' and amount_due > 0
    order by (id = ${input.first ?? ""}) desc, period_start, id
    for update`;
  for (const invoice of open) {
    if (invoice.amount_due > left) continue;
    const posted = await postTransfer(tx, {
      kind: "invoice_settlement",
      orgId,
      idempotencyKey: `paid:${invoice.id}`,
      description: `Invoice ${invoice.number} paid from a top-up`,
      metadata: { invoice_id: invoice.id, paid_by: input.source },
      from: orgCreditsAccount(orgId),
      to: SystemAccounts.revenue,
      amount: invoice.amount_due,
      createdAt: now,
    });
    if (!posted.created) continue;
    await tx`update invoices set status = 'paid', paid_at = ${now} where id = ${invoice.id} and status = 'open'`;
    left -= invoice.amount_due;
    paid.push(invoice.id);
  }
  return { paid, spent: input.amount - left };
}
