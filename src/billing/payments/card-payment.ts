import type { TransactionSql } from "../../db/client.js";

/** 1 US cent = 10^-2 USD = 10^7 nano-USD: an exact integer conversion, no rounding anywhere. */
export const NANO_USD_PER_CENT = 10_000_000n;

export function centsToNanoUsd(cents: bigint): bigint {
  return cents * NANO_USD_PER_CENT;
}

/** Only USD is credited: the balance is USD, and converting would need a rate we do not own. */
export const CREDITED_CURRENCY = "usd";

/** A `card_topups` row: one card payment and what was given back of it. */
export type TopupRow = {
  payment_id: string;
  charge_id: string | null;
  org_id: string;
  currency: string;
  amount_nano_usd: bigint | null;
  state: "credited" | "partially_reversed" | "reversed" | "refused";
  refunded_minor: bigint;
  reversed_nano_usd: bigint;
  /** The newest refund event's cumulative amount of its charge, and the charge (migration 0053). */
  charge_refunded_minor: bigint;
  charge_refunded_charge_id: string | null;
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

/**
 * Notes which payment a charge is (card_charges, migration 0050), whether or not the payment is
 * credited yet, and notes the charge on the payment's top-up when the event that credited it did
 * not name it (checkout.session.completed; payment_intent.succeeded without latest_charge): a
 * refund or dispute may name only the charge. Call under the payment's lock. False when the charge
 * is another payment's (linkChargeToPayment).
 */
export async function noteChargeOfPayment(
  tx: TransactionSql,
  p: { paymentId: string; chargeId: string; now: Date },
): Promise<boolean> {
  if (!(await linkChargeToPayment(tx, p))) return false;
  await tx`update card_topups set charge_id = ${p.chargeId} where payment_id = ${p.paymentId} and charge_id is null`;
  return true;
}

/**
 * Records that the charge is the payment's, unless an earlier event linked it to another payment
 * (the processor never does; signed events saying otherwise are logged by the caller's outcome and
 * change nothing): true when the charge is this payment's.
 */
export async function linkChargeToPayment(
  tx: TransactionSql,
  p: { paymentId: string; chargeId: string; now: Date },
): Promise<boolean> {
  await tx`insert into card_charges (charge_id, payment_id, created_at) values (${p.chargeId}, ${p.paymentId}, ${p.now})
           on conflict do nothing`;
  return (await paymentOfCharge(tx, p.chargeId)) === p.paymentId;
}

/** The payment a charge is, if an event has named them together. */
export async function paymentOfCharge(tx: TransactionSql, chargeId: string): Promise<string | null> {
  const [row] = await tx<{ payment_id: string }[]>`select payment_id from card_charges where charge_id = ${chargeId}`;
  return row?.payment_id ?? null;
}

export function topupState(reversed: bigint, credited: bigint): TopupRow["state"] {
  return reversed === 0n ? "credited" : reversed === credited ? "reversed" : "partially_reversed";
}
