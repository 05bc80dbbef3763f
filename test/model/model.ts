/**
 * The reference model of the metering engine: plain in-memory state and the money rules of
 * issue 11, written once, as directly as possible. It predicts every response of the real
 * service and every balance; nothing in here knows about HTTP or SQL.
 *
 * Money is bigint nano-USD. Time is milliseconds. Organizations are indexes (0, 1).
 *
 * The rules (issue 11 and src/db/functions/money_rules.sql):
 * 1. A hold is closed once: active → settled | expired. A hold past its expires_at is expired
 *    (its amount back from held to credits) by the first of: the hold sweep, a batch with an
 *    authorization of its org, a usage event naming it. Usage naming a hold past its time is
 *    charged its full cost and answers `already_closed`; naming a live hold settles it.
 * 2. Authorize holds `amount` if it is at most the spendable credits, else 402. A key reused
 *    with the same payload answers the hold and its current status; with another payload, 409.
 *    A hold is live while it is active and before its expires_at: one past its time is shown
 *    as back in the credits at once, whether or not anything has closed it yet.
 * 3. Spending consumes expiring grants first, soonest expiry first: usage settling a hold from
 *    the grants live when the hold was taken (then, for what they do not cover, from those live
 *    now), any other spending from the grants live now. An expired grant's unused part stops
 *    being spendable at its expires_at, less the money in live holds taken while it was live;
 *    its expiry is posted once no such hold is live, and then takes exactly the unused part
 *    (usage after the expiry is owed on top, as if the expiry had been posted at the instant).
 *    Issue 11's first wording capped what an expiry takes at the credits account; that made the
 *    outcome depend on when the worker ran (test/model/rules.test.ts), and the engine dropped it.
 * 4. A card refund takes back what was refunded, at most what the payment credited and has not
 *    given back; credits may go negative.
 * 5. A cycle close (no plan) moves no money: usage was paid as it happened.
 */

export type HoldStatus = "active" | "settled" | "expired";

export type MHold = {
  id: string;
  org: number;
  amount: bigint;
  status: HoldStatus;
  createdAt: number;
  expiresAt: number;
  key: string | null;
  payload: string;
};

export type MGrant = {
  id: string;
  key: string;
  org: number;
  amount: bigint;
  consumed: bigint;
  createdAt: number;
  expiresAt: number | null;
  posted: boolean;
  expiredAmount: bigint;
  payload: string;
};

export type MPayment = {
  org: number;
  pi: string;
  ch: string;
  cents: bigint;
  credited: bigint;
  reversed: bigint;
  refundedCents: bigint;
};

export type MUsage = {
  org: number;
  key: string;
  payload: string;
  cost: bigint;
  usageId: string;
  holdId: string | null;
  occurredAt: number;
  invoiced: boolean;
};

export type MOrg = { credits: bigint; held: bigint; cycleStart: number };

export type AuthorizeOutcome =
  | { kind: "held"; hold: MHold }
  | { kind: "replayed"; hold: MHold }
  | { kind: "insufficient_balance" }
  | { kind: "idempotency_key_reused" };

export type UsageOutcome =
  | { kind: "recorded"; event: MUsage; holdOutcome: "settled" | "already_closed" | null }
  | { kind: "duplicate"; first: MUsage }
  | { kind: "rejected"; code: "hold_not_found" | "idempotency_key_reused" };

export const NANO_PER_CENT = 10_000_000n;
/** A cycle ended early must have run at least this long (MIN_EARLY_CYCLE_MS in src/billing/invoices.ts). */
const MIN_EARLY_CYCLE_MS = 60_000;

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);

export class Model {
  readonly orgs: MOrg[];
  readonly holds: MHold[] = [];
  readonly grants: MGrant[] = [];
  readonly payments: MPayment[] = [];
  readonly usage: MUsage[] = [];

  constructor(
    public now: number,
    orgCount: number,
  ) {
    const monthStart = new Date(now);
    const cycleStart = Date.UTC(monthStart.getUTCFullYear(), monthStart.getUTCMonth(), 1); // anchor day 1
    this.orgs = Array.from({ length: orgCount }, () => ({ credits: 0n, held: 0n, cycleStart }));
  }

  // ---- what an org sees ----------------------------------------------------------------------

  /** GET /v1/billing/balance: holds past their time back in the credits, less what expired grants take. */
  balance(org: number): { balance: bigint; credits: bigint; held: bigint } {
    const o = this.orgs[org]!;
    const lapsed = this.holds
      .filter((h) => h.org === org && h.status === "active" && !this.isLive(h))
      .reduce((s, h) => s + h.amount, 0n);
    const credits = o.credits + lapsed - this.effectiveExpiry(org);
    return { balance: credits + o.held - lapsed, credits, held: o.held - lapsed };
  }

  /** What an authorization may hold, once its batch has closed the org's holds past their time. */
  spendable(org: number): bigint {
    return this.orgs[org]!.credits - this.effectiveExpiry(org);
  }

  /**
   * Rule 3b: what expired, unposted grants take from the spendable credits now: their unused
   * parts, less the money in live holds taken while they were live. Each hold's money counts
   * once, against the grants it would be drawn from if it settled in full now (those live when
   * it was taken, soonest expiry first; holds in the order they were taken): one hold does not
   * shield two grants, nor a grant it could never be charged to. A plain sum (unused of all
   * pending grants less all such holds) depends on when the worker posts each grant
   * (rules.test.ts: two grants, a hold taken between their expiries).
   */
  effectiveExpiry(org: number): bigint {
    const pending = this.pendingGrants(org).sort((a, b) => a.expiresAt! - b.expiresAt!);
    const unused = new Map(pending.map((g) => [g, g.amount - g.consumed]));
    for (const h of this.holds) {
      if (h.org !== org || !this.isLive(h)) continue;
      let shield = h.amount;
      for (const g of pending) {
        if (shield === 0n) break;
        if (!takenWhileLive(h, g)) continue;
        const take = min(unused.get(g)!, shield);
        unused.set(g, unused.get(g)! - take);
        shield -= take;
      }
    }
    return [...unused.values()].reduce((s, u) => s + u, 0n);
  }

  isLive(h: MHold): boolean {
    return h.status === "active" && h.expiresAt > this.now;
  }

  /** What an API reports for a hold: a hold past its time is expired even before anyone closes it. */
  reportedStatus(h: MHold): HoldStatus {
    return h.status === "active" && h.expiresAt <= this.now ? "expired" : h.status;
  }

  // ---- commands ------------------------------------------------------------------------------

  advance(ms: number) {
    this.now += ms;
  }

  grant(org: number, key: string, amount: bigint, expiresAt: number | null, payload: string): MGrant {
    const g: MGrant = {
      id: "",
      key,
      org,
      amount,
      consumed: 0n,
      createdAt: this.now,
      expiresAt,
      posted: false,
      expiredAmount: 0n,
      payload,
    };
    this.grants.push(g);
    this.orgs[org]!.credits += amount;
    return g;
  }

  /** One authorization in its own batch (or after the usage of a shared batch). */
  authorize(org: number, amount: bigint, ttlSeconds: number, key: string | null, payload: string): AuthorizeOutcome {
    this.expireDueHolds(org); // any batch with an authorization of the org
    const previous = key === null ? undefined : this.holds.find((h) => h.org === org && h.key === key);
    if (previous)
      return previous.payload === payload ? { kind: "replayed", hold: previous } : { kind: "idempotency_key_reused" };
    if (amount > this.spendable(org)) return { kind: "insufficient_balance" };
    const hold: MHold = {
      id: "",
      org,
      amount,
      status: "active",
      createdAt: this.now,
      expiresAt: this.now + ttlSeconds * 1000,
      key,
      payload,
    };
    this.holds.push(hold);
    this.orgs[org]!.credits -= amount;
    this.orgs[org]!.held += amount;
    return { kind: "held", hold };
  }

  /** One usage event (events of one batch are applied in order). `holdId` undefined: no hold. */
  recordUsage(
    org: number,
    key: string,
    payload: string,
    cost: bigint,
    holdId: string | undefined,
    occurredAt: number,
  ): UsageOutcome {
    const first = this.usage.find((u) => u.org === org && u.key === key);
    if (first)
      return first.payload === payload
        ? { kind: "duplicate", first }
        : { kind: "rejected", code: "idempotency_key_reused" };
    let holdOutcome: "settled" | "already_closed" | null = null;
    let unfunded = cost; // what the grants live when a settled hold was taken did not cover
    if (holdId !== undefined) {
      const hold = this.holds.find((h) => h.id === holdId);
      if (!hold || hold.org !== org) return { kind: "rejected", code: "hold_not_found" };
      if (hold.status === "active" && hold.expiresAt > this.now) {
        this.close(hold, "settled");
        holdOutcome = "settled";
        unfunded = this.consumeGrants(org, cost, hold.createdAt);
      } else {
        if (hold.status === "active") this.close(hold, "expired");
        holdOutcome = "already_closed";
      }
    }
    this.orgs[org]!.credits -= cost;
    this.consumeGrants(org, unfunded, this.now);
    const event: MUsage = { org, key, payload, cost, usageId: "", holdId: holdId ?? null, occurredAt, invoiced: false };
    this.usage.push(event);
    return { kind: "recorded", event, holdOutcome };
  }

  /** expireHolds: every org's holds past their time. Returns how many. */
  sweepHolds(): number {
    return this.orgs.reduce((n, _o, org) => n + this.expireDueHolds(org), 0);
  }

  /** expireGrants: rule 3c, grants in expiry order. Returns how many were posted. */
  postGrantExpiries(): number {
    const due = this.grants
      .filter((g) => g.expiresAt !== null && g.expiresAt <= this.now && !g.posted)
      .filter((g) => !this.holds.some((h) => h.org === g.org && this.isLive(h) && takenWhileLive(h, g)))
      .sort((a, b) => a.expiresAt! - b.expiresAt!);
    for (const g of due) {
      const take = g.amount - g.consumed;
      this.orgs[g.org]!.credits -= take;
      g.posted = true;
      g.expiredAmount = take;
    }
    return due.length;
  }

  /** Ends the running cycle now (no plan, no adjustments): an invoice of the usage not invoiced yet; no money moves. */
  closeCycle(org: number): { created: boolean; subtotal: bigint } {
    const o = this.orgs[org]!;
    if (this.now - o.cycleStart < MIN_EARLY_CYCLE_MS) return { created: false, subtotal: 0n };
    let subtotal = 0n;
    for (const u of this.usage) {
      if (u.org !== org || u.invoiced || u.occurredAt >= this.now) continue;
      u.invoiced = true;
      subtotal += u.cost;
    }
    o.cycleStart = this.now;
    return { created: true, subtotal };
  }

  cardTopup(org: number, pi: string, ch: string, cents: bigint): MPayment {
    const p: MPayment = { org, pi, ch, cents, credited: cents * NANO_PER_CENT, reversed: 0n, refundedCents: 0n };
    this.payments.push(p);
    this.orgs[org]!.credits += p.credited;
    return p;
  }

  /** charge.refunded with the charge's cumulative refunded amount. */
  cardRefund(p: MPayment, cumulativeCents: bigint): "reversed" | "nothing_to_reverse" {
    const requested = cumulativeCents > p.refundedCents ? (cumulativeCents - p.refundedCents) * NANO_PER_CENT : 0n;
    const amount = min(requested, p.credited - p.reversed);
    p.refundedCents = max(p.refundedCents, cumulativeCents);
    if (amount <= 0n) return "nothing_to_reverse";
    p.reversed += amount;
    this.orgs[p.org]!.credits -= amount;
    return "reversed";
  }

  // ---- the rules' building blocks --------------------------------------------------------------

  /** Closes the org's holds past their time, as any batch with an authorization of the org does first. */
  expireDueHolds(org: number): number {
    const due = this.holds.filter((h) => h.org === org && h.status === "active" && h.expiresAt <= this.now);
    for (const h of due) this.close(h, "expired");
    return due.length;
  }

  private close(h: MHold, status: "settled" | "expired") {
    h.status = status;
    this.orgs[h.org]!.credits += h.amount;
    this.orgs[h.org]!.held -= h.amount;
  }

  private pendingGrants(org: number): MGrant[] {
    return this.grants.filter((g) => g.org === org && g.expiresAt !== null && g.expiresAt <= this.now && !g.posted);
  }

  /**
   * Rule 3a: spending drawn from the grants live at `at` and not posted, soonest expiry first;
   * returns what they did not cover. Usage settling a hold is drawn from the grants live when
   * the hold was taken, and what they do not cover from those live now, like any other spending.
   */
  private consumeGrants(org: number, amount: bigint, at: number): bigint {
    let left = amount;
    const live = this.grants
      .filter(
        (g) =>
          g.org === org &&
          g.expiresAt !== null &&
          g.expiresAt > at &&
          g.createdAt <= at &&
          !g.posted &&
          g.consumed < g.amount,
      )
      .sort((a, b) => a.expiresAt! - b.expiresAt!);
    for (const g of live) {
      if (left <= 0n) break;
      const take = min(g.amount - g.consumed, left);
      g.consumed += take;
      left -= take;
    }
    return left;
  }
}

/** A hold taken while the grant was live: [created_at, expires_at). */
export function takenWhileLive(h: MHold, g: MGrant): boolean {
  return g.expiresAt !== null && h.createdAt >= g.createdAt && h.createdAt < g.expiresAt;
}
