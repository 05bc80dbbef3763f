/**
 * The money rules that are arithmetic on amounts already read (no I/O): verbs read an
 * organization's accounts under its lock and decide with these. Where the metering hot path
 * decides the same inside PostgreSQL, it calls the SQL function of the same rule
 * (src/db/functions/money_rules.sql, named beside each rule here), and
 * test/billing/money-rules.test.ts checks both agree on generated amounts. The rules that read
 * tables (what expired grants take, grant_expiry_taken; which expiries are due) are SQL only.
 */

/**
 * What an organization can spend now: its credits account less what grants that have expired,
 * but whose expiry is not posted yet, take from it (grant_expiry_taken). SQL: spendable_credits.
 */
export function spendable(credits: bigint, pendingExpiry: bigint): bigint {
  return credits - pendingExpiry;
}

/**
 * Whether a debit took the balance (credits + held, as posted) from at or above the
 * organization's low-balance threshold to below it: one alert per crossing (the auto top-up
 * threshold is judged by the same rule). SQL: low_balance_crossed.
 */
export function lowBalanceCrossed(before: bigint, after: bigint, threshold: bigint): boolean {
  return before >= threshold && after < threshold;
}

/**
 * An organization's money as it is shown, whenever the workers get to post what the rules say:
 * holds past their expiry (`lapsedHolds`, not yet closed) are back in the credits, and what
 * expired grants take is gone. balance = credits + held.
 */
export function shownBalance(a: { credits: bigint; held: bigint; lapsedHolds: bigint; pendingExpiry: bigint }): {
  balance: bigint;
  credits: bigint;
  held: bigint;
} {
  const held = a.held - a.lapsedHolds;
  const credits = a.credits + a.lapsedHolds - a.pendingExpiry;
  return { balance: credits + held, credits, held };
}

/**
 * How an invoice's charges (plan, adjustments; usage was paid as it happened) are settled at
 * close: from the spendable credits as far as they go, the rest due. A net credit (charges < 0)
 * goes to the credits whole. creditsApplied: the part of the subtotal (usage + charges) the
 * credits paid, never negative (a credit beyond the cycle's charges is not credits applied).
 */
export function settleCharges(a: { usage: bigint; charges: bigint; available: bigint }): {
  settled: bigint;
  amountDue: bigint;
  subtotal: bigint;
  creditsApplied: bigint;
} {
  const { usage, charges, available } = a;
  const settled = charges > 0n ? (charges < available ? charges : available > 0n ? available : 0n) : charges;
  const amountDue = charges - settled;
  const subtotal = usage + charges;
  const creditsApplied = subtotal - amountDue > 0n ? subtotal - amountDue : 0n;
  return { settled, amountDue, subtotal, creditsApplied };
}

/** A grant that spending can still draw from (unexpired as posted, something left), and a live hold. */
export type DrawableGrant = { id: string; free: bigint; createdAt: Date; expiresAt: Date };
export type LiveHold = { amount: bigint; createdAt: Date };

/**
 * What each grant keeps, at most, once the live holds are settled, as far as their draws on it are
 * sure: a hold's charge draws first on the grants that were live when it was taken, soonest expiry
 * first (then by id), as SQL's metering settle does (consume_expiring_grants), and such a grant's
 * expiry waits for the hold (grant_expiry_waits). What a hold's charge takes beyond those grants,
 * from grants live when it settles, depends on when that is, so it is not counted: a hold may
 * outlive a grant made after it. Holds in the order they were taken; `grants` in (expires_at, id)
 * order. Returns the free amount per grant id.
 */
export function grantsLeftAfterHolds(grants: DrawableGrant[], holds: LiveHold[]): Map<string, bigint> {
  const left = new Map(grants.map((g) => [g.id, g.free]));
  for (const hold of holds) {
    let owed = hold.amount;
    for (const g of grants) {
      if (owed === 0n) break;
      const free = left.get(g.id) ?? 0n;
      // hold_taken_while_live: taken at or after the grant was made, before it expired.
      if (free === 0n || hold.createdAt < g.createdAt || hold.createdAt >= g.expiresAt) continue;
      const take = free < owed ? free : owed;
      left.set(g.id, free - take);
      owed -= take;
    }
  }
  return left;
}
