import fc from "fast-check";
import { describe, expect } from "vitest";
import { payDueReferrals, payoutMonth } from "../../src/billing/referrals/pay-referrals.js";
import type { Sql } from "../../src/db/client.js";
import { modelSettings } from "../model/settings.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge, paymentIntent, type PaymentsTestApp, paymentsTest, processorId } from "../support/processor.js";
import { createOrgVia, referralMovements, referralOf, testReferralSettings } from "./support.js";

/**
 * Referral rules on card top-ups told by signed processor events (the real route and handlers),
 * on the app's manual clock: two top-ups qualifying at the same moment, the monthly cap, and a
 * property test over generated sequences of top-ups, refunds, clock advances and payout runs.
 */
const USD = 1_000_000_000n;
const DAY = 86_400_000;
const { runs, seed } = modelSettings(15);

const it = paymentsTest.extend({});

type Customer = { id: string; orgKey: string; customerId: string };

/** An org created with `code` (or none), linked to a fresh processor customer. */
async function customerOrg(app: PaymentsTestApp, name: string, code?: string): Promise<Customer> {
  const org = await createOrgVia(app, name, code);
  const customerId = processorId("cus");
  const res = await app.call("PUT", `/v1/admin/orgs/${org.id}/processor-customer`, {
    key: TEST_ADMIN_KEY,
    body: { customer_id: customerId },
  });
  if (res.status !== 201) throw new Error(res.text);
  return { ...org, customerId };
}

async function codeOf(app: PaymentsTestApp, orgKey: string): Promise<string> {
  return (await app.call("GET", "/v1/billing/referrals", { key: orgKey })).json.code;
}

type Payment = { pi: string; ch: string; cents: number };

/** A paid card top-up as the processor tells it (payment_intent.succeeded). */
async function pay(app: PaymentsTestApp, org: Customer, cents: number): Promise<Payment> {
  const p = { pi: processorId("pi"), ch: processorId("ch"), cents };
  const res = await app.deliver(
    app.event("payment_intent.succeeded", paymentIntent({ id: p.pi, customer: org.customerId, cents, charge: p.ch })),
  );
  if (res.status !== 200) throw new Error(res.text);
  return p;
}

/** A full refund of a payment (charge.refunded). */
async function refund(app: PaymentsTestApp, p: Payment): Promise<void> {
  const res = await app.deliver(
    app.event("charge.refunded", charge({ id: p.ch, paymentIntent: p.pi, cents: p.cents, refundedCents: p.cents })),
  );
  if (res.status !== 200) throw new Error(res.text);
}

const grantsOf = (sql: Sql, referralId: string) =>
  sql<{ org_id: string; amount: bigint; clawed: bigint | null }[]>`
    select org_id, amount, case when clawed_back_at is not null then expired_amount end as clawed
    from credit_grants where source = 'referral' and source_id = ${referralId}`;

describe("referral rules", () => {
  it("two top-ups credited at the same moment qualify the referral once; racing payouts pay it once", async ({
    app,
    db,
  }) => {
    const settings = testReferralSettings();
    const referrer = await customerOrg(app, "Race Referrer");
    const referred = await customerOrg(app, "Race Referred", await codeOf(app, referrer.orgKey));
    const [a, b] = await Promise.all([pay(app, referred, 2500), pay(app, referred, 4000)]);
    const [row] = await db.sql<{ state: string; qualifying_ref: string }[]>`
      select state, qualifying_ref from referrals where referred_org_id = ${referred.id}`;
    expect(row?.state).toBe("qualified");
    expect([a?.pi, b?.pi]).toContain(row?.qualifying_ref);
    app.clock.advance(14 * DAY);
    const runs = await Promise.all([1, 2, 3].map(() => payDueReferrals(contextAt(db.appSql, app.clock()), settings)));
    expect(runs.reduce((n, r) => n + r.paid, 0)).toBe(1);
    expect(await referralMovements(db.sql, referrer.id)).toEqual([["referral_credit", 20n * USD]]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([["referral_credit", 10n * USD]]);
    const events = await db.sql<{ n: number }[]>`
      select count(*)::int as n from billing_events where type = 'referral.qualified' and org_id = ${referrer.id}`;
    expect(events[0]?.n).toBe(1);
    await expectLedgerConsistent(db.sql);
  });

  it("the monthly cap: rewards past it are recorded as capped (the referred org is still paid); a new month has room again", async ({
    app,
    db,
  }) => {
    // $20 a referral, $50 a month: two fit, the third is capped.
    const settings = testReferralSettings({ REFERRAL_MONTHLY_CAP_USD: "50.00" });
    app.clock.set(new Date("2027-03-03T00:00:00Z"));
    const referrer = await customerOrg(app, "Cap Referrer");
    const code = await codeOf(app, referrer.orgKey);
    const referred = [];
    for (const n of [1, 2, 3, 4]) referred.push(await customerOrg(app, `Cap Referred ${n}`, code));
    for (const r of referred.slice(0, 3)) await pay(app, r, 1000);
    app.clock.advance(14 * DAY);
    expect(await payDueReferrals(contextAt(db.appSql, app.clock()), settings)).toEqual({
      paid: 2,
      capped: 1,
      rejected: 0,
    });
    const states = await Promise.all(referred.slice(0, 3).map(async (r) => (await referralOf(db.sql, r.id)).state));
    expect(states.sort()).toEqual(["capped", "paid", "paid"]);
    expect(await referralMovements(db.sql, referrer.id)).toEqual([
      ["referral_credit", 20n * USD],
      ["referral_credit", 20n * USD],
    ]);
    for (const r of referred.slice(0, 3)) {
      expect(await referralMovements(db.sql, r.id)).toEqual([["referral_credit", 10n * USD]]);
    }
    // The fourth qualifies in March and pays in April: a new month.
    await pay(app, referred[3] as Customer, 1000);
    app.clock.set(new Date("2027-04-01T00:00:00Z"));
    expect(await payDueReferrals(contextAt(db.appSql, app.clock()), settings)).toMatchObject({ paid: 1, capped: 0 });
    const view = await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey });
    expect(view.json.credits_earned_nano_usd).toBe(String(60n * USD));
    expect(view.json.referrals.filter((r: { state: string }) => r.state === "capped")).toEqual([
      expect.objectContaining({ reward: null, reward_nano_usd: null }),
    ]);
  });

  it("property: over generated top-ups, refunds, clock advances and payout runs, each referral pays at most once per side, never more than configured net of clawbacks, within the monthly cap, in the state the sequence implies; the ledger balances", {
    timeout: 600_000,
  }, async ({ app, db }) => {
    const settings = testReferralSettings({ REFERRAL_MONTHLY_CAP_USD: "40.00" });
    type Cmd =
      | { t: "pay"; who: number; cents: number }
      | { t: "refund"; pick: number }
      | { t: "advance"; days: number }
      | { t: "payout" };
    const cmd: fc.Arbitrary<Cmd> = fc.oneof(
      fc.record({
        t: fc.constant("pay" as const),
        who: fc.integer({ min: 0, max: 2 }),
        cents: fc.integer({ min: 500, max: 5000 }),
      }),
      fc.record({ t: fc.constant("refund" as const), pick: fc.nat() }),
      fc.record({ t: fc.constant("advance" as const), days: fc.integer({ min: 1, max: 20 }) }),
      fc.constant({ t: "payout" as const }),
    );
    // Always among the runs: paid, then the qualifying top-up refunded (a clawback), and a cancel.
    const PAID_THEN_CLAWED: Cmd[] = [
      { t: "pay", who: 0, cents: 1000 },
      { t: "pay", who: 1, cents: 1000 },
      { t: "refund", pick: 1 },
      { t: "advance", days: 15 },
      { t: "payout" },
      { t: "refund", pick: 0 },
    ];
    let run = 0;
    const seen = { paid: 0, clawed: 0, canceled: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 3, maxLength: 14 }), async (cmds) => {
        run++;
        const referrer = await customerOrg(app, `Prop Referrer ${run}`);
        const code = await codeOf(app, referrer.orgKey);
        const referred: Customer[] = [];
        for (const n of [0, 1, 2]) referred.push(await customerOrg(app, `Prop Referred ${run}.${n}`, code));
        // The model: each referred org's first payment and when it was refunded, and the payout runs.
        // Steps order what happens at one clock time (a payout and a refund at the same instant).
        const payments: (Payment & { who: number; at: number; refundedStep: number | null })[] = [];
        const payouts: { at: number; step: number }[] = [];
        for (const [step, c] of cmds.entries()) {
          if (c.t === "pay") {
            const who = referred[c.who] as Customer;
            payments.push({
              ...(await pay(app, who, c.cents)),
              who: c.who,
              at: app.clock().getTime(),
              refundedStep: null,
            });
          } else if (c.t === "refund") {
            const open = payments.filter((p) => p.refundedStep === null);
            const p = open[c.pick % Math.max(open.length, 1)];
            if (!p) continue;
            await refund(app, p);
            p.refundedStep = step;
          } else if (c.t === "advance") {
            app.clock.advance(c.days * DAY);
          } else {
            await payDueReferrals(contextAt(db.appSql, app.clock()), settings);
            payouts.push({ at: app.clock().getTime(), step });
          }
        }
        const monthly = new Map<string, bigint>();
        for (const [who, org] of referred.entries()) {
          const row = await referralOf(db.sql, org.id);
          const first = payments.find((p) => p.who === who);
          const grants = await grantsOf(db.sql, row.id);
          // Each side at most once, never more than configured, a clawback never more than its grant.
          expect(grants.filter((g) => g.org_id === referrer.id).length).toBeLessThanOrEqual(1);
          expect(grants.filter((g) => g.org_id === org.id).length).toBeLessThanOrEqual(1);
          for (const g of grants) {
            const configured = g.org_id === referrer.id ? settings.referrerCredit : settings.referredCredit;
            expect(g.amount).toBe(configured);
            expect(g.clawed ?? 0n).toBeLessThanOrEqual(g.amount);
            expect(g.amount - (g.clawed ?? 0n)).toBeGreaterThanOrEqual(0n);
          }
          // The ledger says the same per org: referral credits less clawbacks within what was granted.
          const net = (await referralMovements(db.sql, org.id)).reduce((s, [, a]) => s + a, 0n);
          expect(net).toBeGreaterThanOrEqual(0n);
          expect(net).toBeLessThanOrEqual(settings.referredCredit);
          // The state the sequence implies.
          if (!first) {
            expect(row.state).toBe("linked");
            continue;
          }
          const dueAt = first.at + settings.holdMs;
          const refunded = first.refundedStep;
          const paidBy = payouts.find((p) => p.at >= dueAt && (refunded === null || p.step < refunded));
          if (paidBy === undefined) {
            expect(row.state).toBe(refunded === null ? "qualified" : "canceled");
            expect(grants).toEqual([]);
            if (row.state === "canceled") seen.canceled++;
          } else {
            expect(["paid", "capped", "clawed_back"]).toContain(row.state);
            expect(row.state === "clawed_back").toBe(refunded !== null);
            const referredGrant = grants.find((g) => g.org_id === org.id);
            expect(referredGrant?.amount).toBe(settings.referredCredit);
            // Nothing of it was spent: a clawback takes all of it back.
            expect(referredGrant?.clawed ?? 0n).toBe(refunded !== null ? settings.referredCredit : 0n);
            seen.paid++;
            if (refunded !== null) seen.clawed++;
            const referrerGrant = grants.find((g) => g.org_id === referrer.id);
            if (referrerGrant) {
              const month = payoutMonth(new Date(paidBy.at)).toISOString();
              monthly.set(month, (monthly.get(month) ?? 0n) + referrerGrant.amount);
            }
          }
        }
        // The cap: the referrer never got more than it in one calendar month.
        for (const total of monthly.values()) expect(total).toBeLessThanOrEqual(settings.monthlyCap);
        await expectLedgerConsistent(db.sql);
      }),
      { numRuns: runs, seed, examples: [[PAID_THEN_CLAWED]] },
    );
    expect(seen.paid).toBeGreaterThan(0);
    expect(seen.clawed).toBeGreaterThan(0);
    expect(seen.canceled).toBeGreaterThan(0);
  });
});
