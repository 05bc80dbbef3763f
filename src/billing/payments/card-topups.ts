import type { Logger } from "pino";
import type { TransactionSql } from "../../db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransaction } from "../../ledger/post-transaction.js";
import { watchLowBalance } from "../low-balance.js";

/** 1 US cent = 10^-2 USD = 10^7 nano-USD: an exact integer conversion, no rounding anywhere. */
export const NANO_USD_PER_CENT = 10_000_000n;

export function centsToNanoUsd(cents: bigint): bigint {
  return cents * NANO_USD_PER_CENT;
}

/** Only USD is credited: the balance is USD, and converting would need a rate we do not own. */
export const CREDITED_CURRENCY = "usd";

type TopupRow = {
  payment_id: string;
  charge_id: string | null;
  org_id: string;
  currency: string;
  amount_nano_usd: bigint | null;
  state: "credited" | "partially_reversed" | "reversed" | "refused";
  refunded_minor: bigint;
  reversed_nano_usd: bigint;
};

/**
 * Serializes everything that concerns one payment (its credit, refunds and disputes), across
 * processes, for the rest of the transaction. Events may name the payment, its charge or both,
 * so every id known is locked, in sorted order so that two events can never deadlock.
 */
export async function lockPayment(tx: TransactionSql, refs: (string | null | undefined)[]): Promise<void> {
  const keys = [...new Set(refs.filter((r): r is string => Boolean(r)))].sort();
  for (const key of keys) await tx`select pg_advisory_xact_lock(hashtextextended(${`card-payment:${key}`}, 0))`;
}

export type TopupInput = {
  orgId: string;
  paymentId: string;
  chargeId: string | null;
  currency: string;
  amountMinor: bigint;
};
export type CreditOutcome = "credited" | "already_credited" | "refused_currency" | "nothing_received";

/**
 * Credits a succeeded card payment to the org, once per payment id however many events name
 * it: a `card_topup` ledger transaction keyed by the payment id, plus its card_topups row. Other
 * currencies are recorded as refused and credit nothing. Call inside the event's transaction.
 */
export async function creditCardTopup(
  tx: TransactionSql,
  logger: Logger,
  input: TopupInput,
  now: Date,
): Promise<CreditOutcome> {
  await lockPayment(tx, [input.paymentId, input.chargeId]);
  const [existing] = await tx`select 1 from card_topups where payment_id = ${input.paymentId}`;
  if (existing) return "already_credited";
  if (input.amountMinor <= 0n) return "nothing_received";
  if (input.currency !== CREDITED_CURRENCY) {
    await tx`
      insert into card_topups (payment_id, charge_id, org_id, currency, amount_minor, state, reason, created_at, updated_at)
      values (${input.paymentId}, ${input.chargeId}, ${input.orgId}, ${input.currency}, ${input.amountMinor.toString()}, 'refused',
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
  const posted = await postTransaction(tx, {
    kind: "card_topup",
    orgId: input.orgId,
    idempotencyKey: input.paymentId,
    description: "Card top-up",
    // Shown to the org by GET /v1/billing/transactions: no processor ids in here.
    metadata: { source: "card", currency: "usd", amount_cents: input.amountMinor.toString() },
    entries: [
      { accountId: orgCreditsAccount(input.orgId), amount },
      { accountId: SystemAccounts.card, amount: -amount },
    ],
    createdAt: now,
  });
  if (!posted.created) return "already_credited";
  await tx`
    insert into card_topups (payment_id, charge_id, org_id, currency, amount_minor, amount_nano_usd, state, credit_transaction_id, created_at, updated_at)
    values (${input.paymentId}, ${input.chargeId}, ${input.orgId}, ${input.currency}, ${input.amountMinor.toString()}, ${amount.toString()},
            'credited', ${posted.transactionId}, ${now}, ${now})`;
  return "credited";
}

/**
 * A refund carries the charge's cumulative `amount_refunded`: each refund is applied as the
 * growth of that amount since the last one applied, so refunds arriving late or out of order
 * are counted exactly once. A dispute is applied once per dispute id, for the disputed amount,
 * and its end once: a won dispute gives back what it took (see closeDispute).
 */
export type Reversal =
  | { kind: "refund"; chargeId: string; paymentId: string | null; amountRefundedMinor: bigint; currency: string }
  | {
      kind: "dispute";
      disputeId: string;
      chargeId: string;
      paymentId: string | null;
      amountMinor: bigint;
      currency: string;
    }
  | {
      kind: "dispute_closed";
      disputeId: string;
      chargeId: string;
      paymentId: string | null;
      ending: DisputeEnding;
      currency: string;
    };

/**
 * How a dispute ended, as the processor tells it: `charge.dispute.closed` with status `won` (or
 * `warning_closed`: an inquiry that never became a chargeback) or `lost`, or
 * `charge.dispute.funds_reinstated`: the money came back to us, whatever was said before.
 */
export type DisputeEnding = "won" | "lost" | "funds_reinstated";

export type ReversalOutcome =
  | "reversed"
  | "nothing_to_reverse"
  | "not_credited"
  | "unknown_payment"
  | "refused_currency"
  | "reinstated"
  | "dispute_won"
  | "dispute_lost";

type DisputeRow = { status: "open" | "won" | "lost"; reversed_nano_usd: bigint; reinstated_nano_usd: bigint };

function topupState(reversed: bigint, credited: bigint): TopupRow["state"] {
  return reversed === 0n ? "credited" : reversed === credited ? "reversed" : "partially_reversed";
}

/**
 * Takes a refunded or disputed amount back from the org: a `reversal` ledger transaction, capped
 * at what this payment credited and has not yet given back. The balance may go negative: the
 * money has left us at the processor whatever the org spent meanwhile, and a negative balance
 * blocks further spending (authorizations need spendable credits) until it is topped up.
 * The end of a dispute goes through here too (closeDispute), under the same payment lock.
 */
export async function reverseCardTopup(
  tx: TransactionSql,
  logger: Logger,
  r: Reversal,
  now: Date,
): Promise<{ outcome: ReversalOutcome; orgId: string | null }> {
  await lockPayment(tx, [r.paymentId, r.chargeId]);
  const [row] = await tx<TopupRow[]>`
    select payment_id, charge_id, org_id, currency, amount_nano_usd, state, refunded_minor, reversed_nano_usd from card_topups
    where payment_id = ${r.paymentId ?? ""} or charge_id = ${r.chargeId}
    order by payment_id = ${r.paymentId ?? ""} desc limit 1
    for update`;
  if (!row) return { outcome: "unknown_payment", orgId: null };
  if (row.state === "refused" || row.amount_nano_usd === null) return { outcome: "not_credited", orgId: row.org_id };
  if (r.currency !== row.currency) {
    logger.error(
      { org_id: row.org_id, payment_id: row.payment_id, currency: r.currency },
      `card ${r.kind} in another currency than its payment: not applied`,
    );
    return { outcome: "refused_currency", orgId: row.org_id };
  }
  if (r.kind === "dispute_closed") return closeDispute(tx, logger, r, row, row.amount_nano_usd, now);
  if (r.kind === "dispute") {
    const [dispute] = await tx<
      DisputeRow[]
    >`select status from card_disputes where dispute_id = ${r.disputeId} for update`;
    // Won before we saw it open (the processor does not order deliveries): it never takes anything.
    if (dispute?.status === "won") return { outcome: "nothing_to_reverse", orgId: row.org_id };
  }
  const requestedMinor = r.kind === "refund" ? r.amountRefundedMinor - row.refunded_minor : r.amountMinor;
  const remaining = row.amount_nano_usd - row.reversed_nano_usd;
  const requested = requestedMinor > 0n ? centsToNanoUsd(requestedMinor) : 0n;
  const amount = requested < remaining ? requested : remaining;
  const refundedMinor =
    r.kind === "refund" && r.amountRefundedMinor > row.refunded_minor ? r.amountRefundedMinor : row.refunded_minor;
  let reversed = 0n;
  if (amount > 0n) {
    const lowBalance = await watchLowBalance(tx, row.org_id, now);
    const posted = await postTransaction(tx, {
      kind: "reversal",
      orgId: row.org_id,
      // Per refund (the charge's cumulative refunded amount only grows) and per dispute id.
      idempotencyKey:
        r.kind === "refund" ? `card-refund:${r.chargeId}:${r.amountRefundedMinor}` : `card-dispute:${r.disputeId}`,
      description: r.kind === "refund" ? "Card top-up refunded" : "Card top-up disputed",
      metadata: { source: "card", reason: r.kind },
      entries: [
        { accountId: orgCreditsAccount(row.org_id), amount: -amount },
        { accountId: SystemAccounts.card, amount },
      ],
      createdAt: now,
    });
    if (posted.created) reversed = amount;
    await lowBalance(posted.created ? posted.transactionId : null);
  }
  if (reversed > 0n || refundedMinor !== row.refunded_minor) {
    const total = row.reversed_nano_usd + reversed;
    await tx`
      update card_topups set reversed_nano_usd = ${total.toString()}, refunded_minor = ${refundedMinor.toString()}, updated_at = ${now},
        state = ${topupState(total, row.amount_nano_usd)}
      where payment_id = ${row.payment_id}`;
  }
  if (r.kind === "dispute" && reversed > 0n) {
    // A dispute lost before it was seen open keeps its status: what it takes stays taken.
    await tx`
      insert into card_disputes (dispute_id, payment_id, org_id, status, reversed_nano_usd, created_at, updated_at)
      values (${r.disputeId}, ${row.payment_id}, ${row.org_id}, 'open', ${reversed.toString()}, ${now}, ${now})
      on conflict (dispute_id) do update set reversed_nano_usd = excluded.reversed_nano_usd, updated_at = excluded.updated_at`;
  }
  if (reversed > 0n && requested > reversed) {
    logger.warn(
      { org_id: row.org_id, payment_id: row.payment_id, kind: r.kind },
      "card reversal capped at what the payment credited and has not given back",
    );
  }
  return { outcome: reversed > 0n ? "reversed" : "nothing_to_reverse", orgId: row.org_id };
}

/**
 * The end of a dispute. Lost: what it took stays taken. Won: the processor returns the money to
 * us, so the org gets back what the dispute took, as a `card_topup` keyed by the dispute, once
 * however many events say so; never so much that the payment would keep less reversed than was
 * refunded to the card (a refund made while the dispute held everything took nothing then).
 * A dispute won before it was seen open is recorded as won, so that its late `created` event takes
 * nothing. A `closed` event that contradicts the recorded ending is logged and changes nothing;
 * `funds_reinstated` is money actually returned, so it gives back even after a recorded loss.
 */
async function closeDispute(
  tx: TransactionSql,
  logger: Logger,
  r: Extract<Reversal, { kind: "dispute_closed" }>,
  topup: TopupRow,
  credited: bigint,
  now: Date,
): Promise<{ outcome: ReversalOutcome; orgId: string }> {
  const orgId = topup.org_id;
  const [row] = await tx<DisputeRow[]>`
    select status, reversed_nano_usd, reinstated_nano_usd from card_disputes where dispute_id = ${r.disputeId} for update`;
  const status = r.ending === "lost" ? "lost" : "won";
  if (row && row.status !== "open" && row.status !== status && r.ending !== "funds_reinstated") {
    logger.error(
      { org_id: orgId, payment_id: topup.payment_id, recorded: row.status, event: status },
      "card dispute already ended otherwise: event ignored",
    );
    return { outcome: row.status === "won" ? "dispute_won" : "dispute_lost", orgId };
  }
  // What the dispute took: its row, or for a dispute opened before card_disputes existed, its reversal in the ledger.
  const taken = row ? row.reversed_nano_usd : await disputeReversalAmount(tx, orgId, r.disputeId);
  const given = row?.reinstated_nano_usd ?? 0n;
  let owed = status === "won" ? taken - given : 0n;
  const refunded = centsToNanoUsd(topup.refunded_minor);
  const keptForRefunds = topup.reversed_nano_usd - (refunded < credited ? refunded : credited);
  if (owed > keptForRefunds) owed = keptForRefunds > 0n ? keptForRefunds : 0n;
  let reinstated = 0n;
  if (owed > 0n) {
    const posted = await postTransaction(tx, {
      kind: "card_topup",
      orgId,
      idempotencyKey: `card-dispute-won:${r.disputeId}`,
      description: "Card top-up restored: dispute won",
      metadata: { source: "card", reason: "dispute_won" },
      entries: [
        { accountId: orgCreditsAccount(orgId), amount: owed },
        { accountId: SystemAccounts.card, amount: -owed },
      ],
      createdAt: now,
    });
    if (posted.created) reinstated = owed;
  }
  await tx`
    insert into card_disputes (dispute_id, payment_id, org_id, status, reversed_nano_usd, reinstated_nano_usd, created_at, updated_at)
    values (${r.disputeId}, ${topup.payment_id}, ${orgId}, ${status}, ${taken.toString()}, ${reinstated.toString()}, ${now}, ${now})
    on conflict (dispute_id) do update set status = excluded.status, updated_at = excluded.updated_at,
      reinstated_nano_usd = card_disputes.reinstated_nano_usd + excluded.reinstated_nano_usd`;
  if (reinstated > 0n) {
    const total = topup.reversed_nano_usd - reinstated;
    await tx`
      update card_topups set reversed_nano_usd = ${total.toString()}, state = ${topupState(total, credited)}, updated_at = ${now}
      where payment_id = ${topup.payment_id}`;
  }
  return { outcome: reinstated > 0n ? "reinstated" : status === "won" ? "dispute_won" : "dispute_lost", orgId };
}

/** What the `reversal` of this dispute took from the org's credits (0 if it took nothing). */
async function disputeReversalAmount(tx: TransactionSql, orgId: string, disputeId: string): Promise<bigint> {
  const [row] = await tx<{ taken: string }[]>`
    select coalesce(-sum(e.amount), 0)::text as taken from ledger_transactions t
    join ledger_entries e on e.transaction_id = t.id and e.account_id = ${orgCreditsAccount(orgId)}
    where t.kind = 'reversal' and t.idempotency_key = ${`card-dispute:${disputeId}`}`;
  return BigInt(row!.taken);
}
