import type { TransactionContext } from "../context.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";
import { settleOpenInvoices } from "../invoices/settle-open-invoices.js";
import { qualifyReferral } from "../referrals/qualify-referral.js";
import {
  CREDITED_CURRENCY,
  centsToNanoUsd,
  linkChargeToPayment,
  lockPayment,
  noteChargeOfPayment,
} from "./card-payment.js";

export type TopupInput = {
  orgId: string;
  paymentId: string;
  chargeId: string | null;
  currency: string;
  amountMinor: bigint;
  /** The invoice this payment was made for (a renewal charge): paid before older ones. */
  invoiceFirst?: string | null;
};
export type CreditOutcome = "credited" | "already_credited" | "refused_currency" | "nothing_received";

/**
 * Credits a succeeded card payment to the org, once per payment id however many events name
 * it: a `card_topup` ledger transaction keyed by the payment id, plus its card_topups row. Other
 * currencies are recorded as refused and credit nothing. Open invoices are paid from it first
 * (settleOpenInvoices). Call inside the event's transaction.
 */
export async function creditCardTopup(ctx: TransactionContext, input: TopupInput): Promise<CreditOutcome> {
  const { sql: tx, logger } = ctx;
  const now = ctx.clock();
  await lockPayment(tx, [input.paymentId, input.chargeId]);
  const [existing] = await tx`select 1 from card_topups where payment_id = ${input.paymentId}`;
  if (existing) {
    if (input.chargeId) await noteChargeOfPayment(tx, { paymentId: input.paymentId, chargeId: input.chargeId, now });
    return "already_credited";
  }
  if (input.amountMinor <= 0n) return "nothing_received";
  // The charge is noted on the top-up only if it is this payment's (a charge an earlier event named
  // with another payment stays that one's: its top-up holds it, and the id is unique there).
  const chargeId =
    input.chargeId && (await linkChargeToPayment(tx, { paymentId: input.paymentId, chargeId: input.chargeId, now }))
      ? input.chargeId
      : null;
  if (input.currency !== CREDITED_CURRENCY) {
    await tx`
      insert into card_topups (payment_id, charge_id, org_id, currency, amount_minor, state, reason, created_at, updated_at)
      values (${input.paymentId}, ${chargeId}, ${input.orgId}, ${input.currency}, ${input.amountMinor.toString()}, 'refused',
              ${`unsupported_currency: ${input.currency}`}, ${now}, ${now})`;
    logger.warn(
      {
        org_id: input.orgId,
        payment_id: input.paymentId,
        currency: input.currency,
        amount_minor: input.amountMinor.toString(),
      },
      "card payment in a currency other than usd: recorded, not credited; refund it at the processor",
    );
    return "refused_currency";
  }
  const amount = centsToNanoUsd(input.amountMinor);
  const posted = await postTransfer(tx, {
    kind: "card_topup",
    orgId: input.orgId,
    idempotencyKey: input.paymentId,
    description: "Card top-up",
    // Shown to the org by GET /v1/billing/transactions: no processor ids in here.
    metadata: { source: "card", currency: "usd", amount_cents: input.amountMinor.toString() },
    from: SystemAccounts.card,
    to: orgCreditsAccount(input.orgId),
    amount,
    createdAt: now,
  });
  if (!posted.created) return "already_credited";
  await tx`
    insert into card_topups (payment_id, charge_id, org_id, currency, amount_minor, amount_nano_usd, state, credit_transaction_id, created_at, updated_at)
    values (${input.paymentId}, ${chargeId}, ${input.orgId}, ${input.currency}, ${input.amountMinor.toString()}, ${amount.toString()},
            'credited', ${posted.transactionId}, ${now}, ${now})`;
  // Open invoices are paid first, in this transaction; the rest stays in credits.
  await settleOpenInvoices(tx, {
    orgId: input.orgId,
    amount,
    now,
    source: posted.transactionId,
    first: input.invoiceFirst ?? null,
  });
  // The referred org's first paid top-up (of at least $5) qualifies its referral, in this same transaction.
  await qualifyReferral(tx, {
    orgId: input.orgId,
    kind: "card",
    ref: input.paymentId,
    transactionId: posted.transactionId,
    amount,
    now,
  });
  return "credited";
}
