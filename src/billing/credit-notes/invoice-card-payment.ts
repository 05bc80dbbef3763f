import type { TransactionSql } from "../../db/client.js";

/**
 * The card payment that paid an invoice's amount due, if one did: the invoice's settlement
 * (`invoice_settlement` keyed `paid:<invoice>`, settleOpenInvoices) names the credit that paid it,
 * and a card_topups row names that credit. `refundableMinor`: what is left of the payment at the
 * processor, in cents, after refunds seen and card refunds of credit notes (pending ones included).
 */
export async function cardPaymentOfInvoice(
  tx: TransactionSql,
  invoiceId: string,
): Promise<{ paymentId: string; chargeId: string | null; refundableMinor: bigint } | null> {
  const [row] = await tx<{ payment_id: string; charge_id: string | null; refundable: string }[]>`
    select c.payment_id, c.charge_id,
      (c.amount_minor - c.refunded_minor - coalesce((
        select sum(r.amount_minor) from credit_note_refunds r where r.payment_id = c.payment_id and r.status <> 'failed'), 0))::text as refundable
    from ledger_transactions t
    join card_topups c on c.credit_transaction_id = t.metadata->>'paid_by'
    where t.kind = 'invoice_settlement' and t.idempotency_key = ${`paid:${invoiceId}`} and c.state <> 'refused'`;
  return row ? { paymentId: row.payment_id, chargeId: row.charge_id, refundableMinor: BigInt(row.refundable) } : null;
}
