/**
 * Referrals attacked from the outside (issue #17): the real API, signed events from the fake card
 * processor (dev/processor) and the pay-referrals job's verb, on the file's manual clock.
 *
 * Invariants:
 * - Paid exactly once per referred org (one referral per referred org; both grants keyed by it).
 * - Never paid to a self-referral (the same processor customer, card fingerprint or wallet).
 * - Never more than the monthly cap to one referrer, even with payouts racing across workers and
 *   across the month boundary.
 * - No chains: only the direct referrer of an org ever earns from it.
 * - A refunded qualifying top-up (a processor refund or dispute, or a credit note refunded to
 *   that card payment) cancels the reward before payout and claws back after it; a clawback
 *   takes at most what is unspent of each grant, and never twice.
 * - The ledger stays balanced.
 */
import { describe, expect } from "vitest";
import { payDueReferrals } from "../../src/billing/referrals/pay-referrals.js";
import type { FakeProcessor } from "../../dev/processor/server.js";
import type { Sql } from "../../src/db/client.js";
import { creditNote, issueInvoice } from "../documents/invoices.js";
import type { manualClock } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import type { PaymentsTestApp } from "../support/processor.js";
import { createOrgVia, referralMovements, referralOf, referrerAndReferred, testReferralSettings } from "./support.js";

const USD = 1_000_000_000n;
const DAY = 86_400_000;
const settings = testReferralSettings(); // 14 days; $20 to the referrer, $10 to the referred org

const paymentOf = async (sql: Sql, orgId: string) => {
  const [row] = await sql<{ payment_id: string }[]>`
    select payment_id from card_topups where org_id = ${orgId} order by created_at desc limit 1`;
  return row?.payment_id as string;
};

describe("referrals under attack", () => {
  /** The referred org's first paid top-up is a card payment of an open invoice (it pays the invoice). */
  async function referredPaysInvoiceByCard(
    app: PaymentsTestApp,
    clock: ReturnType<typeof manualClock>,
    processor: FakeProcessor,
    names: [string, string],
  ) {
    const { referrer, referred } = await referrerAndReferred(app, names);
    const invoice = await issueInvoice(app, clock, referred, { charge: "30" });
    expect(invoice.status).toBe("open");
    const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "30.00" }));
    expect(topup.status, topup.text).toBe(201);
    expect((await payOnPage(topup.json.url, "5555555555554444")).status).toBe(303);
    await processor.idle();
    expect((await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: referred.orgKey })).json.status).toBe(
      "paid",
    );
    return { referrer, referred, invoice };
  }

  it("a credit note refunded to the qualifying card payment before payout cancels the referral: no reward", async ({
    app,
    db,
    clock,
    processor,
  }) => {
    const { referrer, referred, invoice } = await referredPaysInvoiceByCard(app, clock, processor, [
      "CN Referrer",
      "CN Referred",
    ]);
    expect((await referralOf(db.sql, referred.id)).state).toBe("qualified");
    clock.advance(2 * DAY);
    const note = await creditNote(app, invoice.id, {
      lines: [{ description: "Refunded", amount: "30.00" }],
      reason: "Customer asked for the money back",
      refund: "card",
    });
    expect(note.status, note.text).toBe(201);
    expect(note.json.card_refund).toEqual({ status: "succeeded", failure: null });
    await processor.idle();
    expect(await referralOf(db.sql, referred.id)).toMatchObject({
      state: "canceled",
      reason: "qualifying_topup_reversed",
    });
    clock.advance(20 * DAY);
    await payDueReferrals(contextAt(db.appSql, clock()), settings);
    expect(await referralMovements(db.sql, referrer.id)).toEqual([]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([]);
    await expectLedgerConsistent(db.sql);
  });

  it("a credit note refunded to the qualifying card payment after payout claws back what is unspent, once", async ({
    app,
    db,
    clock,
    processor,
  }) => {
    const { referrer, referred, invoice } = await referredPaysInvoiceByCard(app, clock, processor, [
      "CN Late Referrer",
      "CN Late Referred",
    ]);
    clock.advance(14 * DAY);
    await payDueReferrals(contextAt(db.appSql, clock()), settings);
    expect((await referralOf(db.sql, referred.id)).state).toBe("paid");
    clock.advance(DAY);
    const body = { lines: [{ description: "Refunded", amount: "10.00" }], reason: "Partial refund", refund: "card" };
    const [a, b] = await Promise.all([creditNote(app, invoice.id, body), creditNote(app, invoice.id, body)]);
    expect([a.status, b.status], a.text + b.text).toEqual([201, 201]);
    await processor.idle();
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "clawed_back" });
    expect(await referralMovements(db.sql, referrer.id)).toEqual([
      ["referral_credit", 20n * USD],
      ["referral_clawback", -20n * USD],
    ]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([
      ["referral_credit", 10n * USD],
      ["referral_clawback", -10n * USD],
    ]);
    await expectLedgerConsistent(db.sql);
  });

  it("a processor refund racing the payout runs: canceled with nothing paid, or paid then clawed back; never paid and kept", async ({
    app,
    db,
    clock,
    processor,
  }) => {
    for (let round = 0; round < 4; round++) {
      const { referrer, referred } = await referrerAndReferred(app, [`Race R${round}`, `Race D${round}`]);
      const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "25.00" }));
      expect((await payOnPage(topup.json.url, "5555555555554444")).status).toBe(303);
      await processor.idle();
      clock.advance(14 * DAY);
      const payment = await paymentOf(db.sql, referred.id);
      await Promise.all([
        payDueReferrals(contextAt(db.appSql, clock()), settings),
        (async () => {
          processor.refund(payment, 2500);
          await processor.idle();
        })(),
        payDueReferrals(contextAt(db.appSql, clock()), settings),
      ]);
      await processor.idle();
      const row = await referralOf(db.sql, referred.id);
      const earned = (await referralMovements(db.sql, referrer.id)).reduce((s, [, a]) => s + a, 0n);
      const welcomed = (await referralMovements(db.sql, referred.id)).reduce((s, [, a]) => s + a, 0n);
      expect(["canceled", "clawed_back"]).toContain(row.state);
      expect(earned).toBe(0n);
      expect(welcomed).toBe(0n);
    }
    await expectLedgerConsistent(db.sql);
  });

  it("the monthly cap with payouts racing in three workers across the month boundary: each month within the cap", async ({
    app,
    db,
    clock,
    processor,
  }) => {
    // $20 a referral, $50 a month: two fit per month.
    const capped = testReferralSettings({ REFERRAL_MONTHLY_CAP_USD: "50.00" });
    const referrer = (await referrerAndReferred(app, ["Cap Racer", "Cap Racer 0"])).referrer;
    const code = (await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey })).json.code as string;
    const referred = [];
    for (let i = 1; i <= 6; i++) referred.push(await createOrgVia(app, `Cap Racer ${i}`, code));
    // Three qualify on 17 March (payable 31 March), three on 18 March (payable 1 April).
    for (const [i, org] of referred.entries()) {
      clock.set(new Date(i < 3 ? "2027-03-17T00:00:00Z" : "2027-03-18T00:00:00Z"));
      const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "10.00" }));
      expect((await payOnPage(topup.json.url, "5555555555554444")).status).toBe(303);
      await processor.idle();
    }
    const workers = () => Promise.all([1, 2, 3].map(() => payDueReferrals(contextAt(db.appSql, clock()), capped)));
    clock.set(new Date("2027-03-31T23:59:59.999Z"));
    await workers();
    clock.set(new Date("2027-04-01T00:00:00Z"));
    await workers();
    await workers();
    const months = await db.sql<{ month: string; paid: string; n: number }[]>`
      select to_char(payout_month, 'YYYY-MM') as month, coalesce(sum(referrer_amount) filter (where referrer_grant_id is not null), 0)::text as paid,
        count(*)::int as n
      from referrals where referrer_org_id = ${referrer.id} and payout_month is not null group by 1 order by 1`;
    expect(months).toEqual([
      { month: "2027-03", paid: String(40n * USD), n: 3 },
      { month: "2027-04", paid: String(40n * USD), n: 3 },
    ]);
    // What was granted is what the referrals say, each referral once.
    expect((await referralMovements(db.sql, referrer.id)).reduce((s, [, a]) => s + a, 0n)).toBe(80n * USD);
    for (const org of referred)
      expect(await referralMovements(db.sql, org.id)).toEqual([["referral_credit", 10n * USD]]);
    await expectLedgerConsistent(db.sql);
  });
});
