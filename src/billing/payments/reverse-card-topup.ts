import type { TransactionSql } from "../../db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";
import type { TransactionContext } from "../context.js";
import { watchLowBalance } from "../low-balance.js";
import { lockOrgAndReferrer, referralTopupReversed } from "../referrals/topup-reversed.js";
import { centsToNanoUsd, lockPayment, topupState, type TopupRow } from "./card-payment.js";

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

/**
 * Takes a refunded or disputed amount back from the org: a `reversal` ledger transaction, capped
 * at what this payment credited and has not yet given back. The balance may go negative: the
 * money has left us at the processor whatever the org spent meanwhile, and a negative balance
 * blocks further spending (authorizations need spendable credits) until it is topped up.
 * The end of a dispute goes through here too (closeDispute), under the same payment lock.
 */
export async function reverseCardTopup(
  ctx: TransactionContext,
  r: Reversal,
): Promise<{ outcome: ReversalOutcome; orgId: string | null }> {
  const { sql: tx, logger } = ctx;
  const now = ctx.clock();
  await lockPayment(tx, [r.paymentId, r.chargeId]);
  // By the payment when one is known (named, or linked to the charge): a top-up that only holds the
  // same charge id is another payment's (the processor named the charge with two payments), and
  // the reversal waits for its own. By the charge only when no payment is known.
  const [row] = await tx<TopupRow[]>`
    select payment_id, charge_id, org_id, currency, amount_nano_usd, state, refunded_minor, reversed_nano_usd,
      charge_refunded_minor, charge_refunded_charge_id from card_topups
    where ${r.paymentId ? tx`payment_id = ${r.paymentId}` : tx`charge_id = ${r.chargeId}`}
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
  if (r.kind === "dispute_closed") return closeDispute(ctx, r, row, row.amount_nano_usd, now);
  // What this dispute holds already: taken by an earlier delivery of its `created`, or given to it
  // from another dispute's win (closeDispute). A redelivery takes only what it still lacks.
  let disputeHolds = 0n;
  if (r.kind === "dispute") {
    const [dispute] = await tx<
      DisputeRow[]
    >`select status, reversed_nano_usd from card_disputes where dispute_id = ${r.disputeId} for update`;
    // Won before we saw it open (the processor does not order deliveries): it never takes anything.
    if (dispute?.status === "won") return { outcome: "nothing_to_reverse", orgId: row.org_id };
    disputeHolds = dispute?.reversed_nano_usd ?? 0n;
  }
  // A refund we made for a credit note gave back money the invoice earned, not credits: it is
  // left out of the charge's cumulative refunded amount, so refunded_minor counts the others only.
  const refundedByOthers =
    r.kind === "refund" ? r.amountRefundedMinor - (await creditNoteRefundsMinor(tx, row.payment_id)) : 0n;
  const requestedMinor = r.kind === "refund" ? refundedByOthers - row.refunded_minor : r.amountMinor;
  const remaining = row.amount_nano_usd - row.reversed_nano_usd;
  const requested = requestedMinor > 0n ? centsToNanoUsd(requestedMinor) : 0n;
  const lacking = requested > disputeHolds ? requested - disputeHolds : 0n;
  const amount = lacking < remaining ? lacking : remaining;
  const refundedMinor =
    r.kind === "refund" && refundedByOthers > row.refunded_minor ? refundedByOthers : row.refunded_minor;
  // The newest cumulative amount seen, with its charge: what a credit note's refund that fails
  // later applies again (refund-to-card.ts, migration 0053).
  const newerRefund = r.kind === "refund" && r.amountRefundedMinor > row.charge_refunded_minor;
  let reversed = 0n;
  if (amount > 0n) {
    // The org and its referrer in id order, before the reversal locks the org alone (a clawback follows).
    await lockOrgAndReferrer(tx, { orgId: row.org_id, kind: "card", ref: row.payment_id, now });
    const lowBalance = await watchLowBalance(tx, row.org_id, now);
    const posted = await postTransfer(tx, {
      kind: "reversal",
      orgId: row.org_id,
      // Per refund (what others refunded of the charge only grows) and per dispute id.
      idempotencyKey:
        r.kind === "refund" ? refundKey(row, r.chargeId, refundedByOthers) : `card-dispute:${r.disputeId}`,
      description: r.kind === "refund" ? "Card top-up refunded" : "Card top-up disputed",
      metadata: { source: "card", reason: r.kind },
      from: orgCreditsAccount(row.org_id),
      to: SystemAccounts.card,
      amount,
      createdAt: now,
    });
    if (posted.created) reversed = amount;
    await lowBalance(posted.created ? posted.transactionId : null);
  }
  if (reversed > 0n || refundedMinor !== row.refunded_minor || newerRefund) {
    const total = row.reversed_nano_usd + reversed;
    await tx`
      update card_topups set reversed_nano_usd = ${total.toString()}, refunded_minor = ${refundedMinor.toString()}, updated_at = ${now},
        state = ${topupState(total, row.amount_nano_usd)}
        ${newerRefund ? tx`, charge_refunded_minor = ${r.amountRefundedMinor.toString()}, charge_refunded_charge_id = ${r.chargeId}` : tx``}
      where payment_id = ${row.payment_id}`;
  }
  // A refund or dispute of a referral's qualifying payment cancels or claws back its reward.
  if (reversed > 0n) await referralTopupReversed(tx, { kind: "card", ref: row.payment_id, now });
  if (r.kind === "dispute") {
    // Recorded even when it took nothing (another dispute held the whole payment): what it
    // disputed is taken from what that one frees if it is won (closeDispute). A dispute lost
    // before it was seen open keeps its status: what it takes stays taken. A redelivery takes
    // nothing more (its ledger key).
    await tx`
      insert into card_disputes (dispute_id, payment_id, org_id, status, reversed_nano_usd, disputed_nano_usd, created_at, updated_at)
      values (${r.disputeId}, ${row.payment_id}, ${row.org_id}, 'open', ${reversed.toString()}, ${requested.toString()}, ${now}, ${now})
      on conflict (dispute_id) do update set reversed_nano_usd = card_disputes.reversed_nano_usd + excluded.reversed_nano_usd,
        disputed_nano_usd = excluded.disputed_nano_usd, updated_at = excluded.updated_at`;
  }
  if (reversed > 0n && lacking > reversed) {
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
  ctx: TransactionContext,
  r: Extract<Reversal, { kind: "dispute_closed" }>,
  topup: TopupRow,
  credited: bigint,
  now: Date,
): Promise<{ outcome: ReversalOutcome; orgId: string }> {
  const { sql: tx, logger } = ctx;
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
  const freed = status === "won" ? taken - given : 0n;
  // The payment's other disputes still open or lost that hold less than they disputed (opened
  // while this one held the payment) take theirs from what this one frees first.
  const others =
    freed > 0n
      ? await takeFreedForOtherDisputes(tx, { paymentId: topup.payment_id, disputeId: r.disputeId, freed, now })
      : null;
  const shifted = others?.shifted ?? 0n;
  let owed = freed - shifted;
  // Never so much back that the payment would keep less reversed than its refunds and its other
  // open or lost disputes hold.
  const refunded = centsToNanoUsd(topup.refunded_minor);
  const held = refunded + (others?.held ?? 0n);
  const keep = topup.reversed_nano_usd - (held < credited ? held : credited);
  if (owed > keep) owed = keep > 0n ? keep : 0n;
  let reinstated = 0n;
  if (owed > 0n) {
    const posted = await postTransfer(tx, {
      kind: "card_topup",
      orgId,
      idempotencyKey: `card-dispute-won:${r.disputeId}`,
      description: "Card top-up restored: dispute won",
      metadata: { source: "card", reason: "dispute_won" },
      from: SystemAccounts.card,
      to: orgCreditsAccount(orgId),
      amount: owed,
      createdAt: now,
    });
    if (posted.created) reinstated = owed;
  }
  await tx`
    insert into card_disputes (dispute_id, payment_id, org_id, status, reversed_nano_usd, reinstated_nano_usd, created_at, updated_at)
    values (${r.disputeId}, ${topup.payment_id}, ${orgId}, ${status}, ${(taken - shifted).toString()}, ${reinstated.toString()}, ${now}, ${now})
    on conflict (dispute_id) do update set status = excluded.status, updated_at = excluded.updated_at,
      reversed_nano_usd = excluded.reversed_nano_usd,
      reinstated_nano_usd = card_disputes.reinstated_nano_usd + excluded.reinstated_nano_usd`;
  if (reinstated > 0n) {
    const total = topup.reversed_nano_usd - reinstated;
    await tx`
      update card_topups set reversed_nano_usd = ${total.toString()}, state = ${topupState(total, credited)}, updated_at = ${now}
      where payment_id = ${topup.payment_id}`;
  }
  return { outcome: reinstated > 0n ? "reinstated" : status === "won" ? "dispute_won" : "dispute_lost", orgId };
}

/**
 * Moves what a won dispute frees to the payment's other disputes, open or lost, that hold less
 * than they disputed, oldest first: the money stays reversed, now held by them (no ledger
 * movement). Returns how much moved and what the other open or lost disputes hold after it.
 */
async function takeFreedForOtherDisputes(
  tx: TransactionSql,
  { paymentId, disputeId, freed, now }: { paymentId: string; disputeId: string; freed: bigint; now: Date },
): Promise<{ shifted: bigint; held: bigint }> {
  const others = await tx<{ dispute_id: string; reversed_nano_usd: bigint; disputed_nano_usd: bigint | null }[]>`
    select dispute_id, reversed_nano_usd, disputed_nano_usd from card_disputes
    where payment_id = ${paymentId} and dispute_id <> ${disputeId} and status in ('open', 'lost')
    order by created_at, dispute_id
    for update`;
  let shifted = 0n;
  let held = 0n;
  for (const d of others) {
    const short = (d.disputed_nano_usd ?? d.reversed_nano_usd) - d.reversed_nano_usd;
    const take = short > freed - shifted ? freed - shifted : short > 0n ? short : 0n;
    if (take > 0n)
      await tx`update card_disputes set reversed_nano_usd = reversed_nano_usd + ${take.toString()}, updated_at = ${now}
               where dispute_id = ${d.dispute_id}`;
    shifted += take;
    held += d.reversed_nano_usd + take;
  }
  return { shifted, held };
}

/**
 * A refund's ledger key: the charge and what others (not our credit notes) have refunded of it in
 * all. By that amount, not the event's: a credit note's card refund still pending when the event
 * came was left out, and if it then fails, the same event sent again owes what it had hidden (keyed
 * by the event's amount, that key was used and it took nothing). With the payment in it too when
 * the charge is not the top-up's own (the processor named the charge with another payment first):
 * that payment's refunds must not use this one's keys.
 */
function refundKey(row: TopupRow, chargeId: string, refundedByOthers: bigint): string {
  return row.charge_id === chargeId
    ? `card-refund:${chargeId}:${refundedByOthers}`
    : `card-refund:${row.payment_id}:${chargeId}:${refundedByOthers}`;
}

/** What the `reversal` of this dispute took from the org's credits (0 if it took nothing). */
async function disputeReversalAmount(tx: TransactionSql, orgId: string, disputeId: string): Promise<bigint> {
  const [row] = await tx<{ taken: string }[]>`
    select coalesce(-sum(e.amount), 0)::text as taken from ledger_transactions t
    join ledger_entries e on e.transaction_id = t.id and e.created_at = t.created_at and e.account_id = ${orgCreditsAccount(orgId)}
    where t.kind = 'reversal' and t.idempotency_key = ${`card-dispute:${disputeId}`}`;
  return row ? BigInt(row.taken) : 0n;
}

/**
 * Cents refunded from a payment by credit notes (src/billing/credit-notes/refund-to-card.ts),
 * pending ones included: a pending refund may already be done at the processor, whose event can
 * arrive before we record the answer. (If it then fails, the newest refund event is applied again,
 * reapplyNewestRefund, and takes what it had hidden.)
 */
async function creditNoteRefundsMinor(tx: TransactionSql, paymentId: string): Promise<bigint> {
  const [row] = await tx<{ minor: string }[]>`
    select coalesce(sum(amount_minor), 0)::text as minor from credit_note_refunds where payment_id = ${paymentId} and status <> 'failed'`;
  return row ? BigInt(row.minor) : 0n;
}

/**
 * Applies the newest refund event of this payment again (its charge's cumulative amount, as
 * recorded): after a credit note's pending card refund failed, what that event left out for it is
 * now others' refunds, and is taken from the org's credits. Its ledger key is the same event's
 * with the larger amount of others' refunds, so it takes only the part hidden. Call under the
 * payment's lock, once the credit note's refund is marked failed.
 */
export async function reapplyNewestRefund(
  ctx: TransactionContext,
  paymentId: string,
): Promise<{ outcome: ReversalOutcome; orgId: string | null } | null> {
  const [seen] = await ctx.sql<
    { charge_refunded_minor: bigint; charge_refunded_charge_id: string | null; currency: string }[]
  >`
    select charge_refunded_minor, charge_refunded_charge_id, currency from card_topups where payment_id = ${paymentId}`;
  if (!seen?.charge_refunded_charge_id || seen.charge_refunded_minor === 0n) return null;
  return reverseCardTopup(ctx, {
    kind: "refund",
    chargeId: seen.charge_refunded_charge_id,
    paymentId,
    amountRefundedMinor: seen.charge_refunded_minor,
    currency: seen.currency,
  });
}
