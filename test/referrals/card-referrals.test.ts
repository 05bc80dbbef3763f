import { describe, expect } from "vitest";
import { payDueReferrals, payReferral } from "../../src/billing/referrals/pay-referrals.js";
import type { Sql } from "../../src/db/client.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { cardTest as it, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { processorId } from "../support/processor.js";
import { createOrgVia, referralMovements, referralOf, referrerAndReferred, testReferralSettings } from "./support.js";

/**
 * Referrals paid by card top-ups through the fake processor (dev/processor, real SDK, signed
 * webhooks to the real route), on the file's manual clock: the holding period is clock time.
 */
const USD = 1_000_000_000n;
const DAY = 86_400_000;
const settings = testReferralSettings(); // defaults: 14 days, $20 to the referrer, $10 to the referred org

const sessionOf = async (sql: Sql, topupId: string) => {
  const [row] = await sql<{ session_id: string }[]>`select session_id from card_checkouts where id = ${topupId}`;
  return row?.session_id as string;
};
const paymentOf = async (sql: Sql, orgId: string) => {
  const [row] = await sql<{ payment_id: string }[]>`
    select payment_id from card_topups where org_id = ${orgId} order by created_at desc limit 1`;
  return row?.payment_id as string;
};

describe("referrals paid by card top-ups", () => {
  it("linked → qualified by the first paid top-up → paid once after 14 days, both grants, events, GET /v1/billing/referrals", async ({
    app,
    processor,
    db,
    clock,
  }) => {
    const { referrer, referred } = await referrerAndReferred(app, ["Card Referrer", "Card Referred"]);
    expect((await referralOf(db.sql, referred.id)).state).toBe("linked");

    const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "25.00" }));
    processor.completeCheckout(await sessionOf(db.sql, topup.json.id), "5555555555554444");
    await processor.idle();
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "qualified", qualifying_kind: "card" });

    // Not before the holding period has passed.
    clock.advance(14 * DAY - 1000);
    expect(await payDueReferrals(contextAt(db.appSql, clock()), settings)).toEqual({ paid: 0, capped: 0, rejected: 0 });
    clock.advance(1000);
    const runs = await Promise.all([
      payDueReferrals(contextAt(db.appSql, clock()), settings),
      payDueReferrals(contextAt(db.appSql, clock()), settings),
    ]);
    expect(runs.map((r) => r.paid).sort()).toEqual([0, 1]);
    expect(await payDueReferrals(contextAt(db.appSql, clock()), settings)).toEqual({ paid: 0, capped: 0, rejected: 0 });

    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "paid" });
    expect(await referralMovements(db.sql, referrer.id)).toEqual([["referral_credit", 20n * USD]]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([["referral_credit", 10n * USD]]);
    expect(await app.balanceNano(referred.orgKey)).toBe(35n * USD);

    const view = await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey });
    expect(view.status).toBe(200);
    expect(view.json).toMatchObject({
      code: expect.stringMatching(/^[a-z0-9]{12}$/),
      credits_earned_nano_usd: String(20n * USD),
      referrals: [
        {
          org_name: "Card Referred",
          state: "paid",
          reason: null,
          reward_nano_usd: String(20n * USD),
          clawed_back_nano_usd: "0",
        },
      ],
    });
    expect(view.json.link).toBe(`https://console.hanzo.ai/signup?ref=${view.json.code}`);
    // Nothing of the referred org but its name: no org id, no payment or top-up ids.
    expect(JSON.stringify(view.json)).not.toContain(referred.id);
    expect(JSON.stringify(view.json)).not.toMatch(/pi_|ch_|cus_|top_/);

    const types = async (key: string) =>
      (await app.call("GET", "/v1/billing/events", { key })).json.data
        .map((e: { type: string }) => e.type)
        .filter((t: string) => t.startsWith("referral."));
    expect(await types(referrer.orgKey)).toEqual(["referral.paid", "referral.qualified"]);
    expect(await types(referred.orgKey)).toEqual(["referral.paid"]);
    await expectLedgerConsistent(db.sql);
  });

  it("a refund of the qualifying payment before payout cancels: no reward, ever", async ({
    app,
    processor,
    db,
    clock,
  }) => {
    const { referrer, referred } = await referrerAndReferred(app, ["Refund Referrer", "Refund Referred"]);
    const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "30.00" }));
    processor.completeCheckout(await sessionOf(db.sql, topup.json.id), "5555555555554444");
    await processor.idle();
    expect((await referralOf(db.sql, referred.id)).state).toBe("qualified");
    clock.advance(3 * DAY);
    processor.refund(await paymentOf(db.sql, referred.id), 100); // one dollar of it
    await processor.idle();
    expect(await referralOf(db.sql, referred.id)).toMatchObject({
      state: "canceled",
      reason: "qualifying_topup_reversed",
    });
    clock.advance(30 * DAY);
    await payDueReferrals(contextAt(db.appSql, clock()), settings);
    expect(await referralMovements(db.sql, referrer.id)).toEqual([]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([]);
    // A second top-up does not qualify a canceled referral again.
    const again = await requestTopup(app, referred.orgKey, topupBody({ amount: "10.00" }));
    processor.completeCheckout(await sessionOf(db.sql, again.json.id), "5555555555554444");
    await processor.idle();
    expect((await referralOf(db.sql, referred.id)).state).toBe("canceled");
  });

  it("self-referral by card: the referred org pays with a card of the referrer's fingerprint → rejected, no reward", async ({
    app,
    processor,
    db,
    clock,
  }) => {
    const { referrer, referred } = await referrerAndReferred(app, ["Same Card A", "Same Card B"]);
    // The referrer paid with the 4242 test card; so does the referred org (the fake gives one
    // fingerprint per card number, as the processor does within an account).
    const own = await requestTopup(app, referrer.orgKey, topupBody({ amount: "5.00" }));
    processor.completeCheckout(await sessionOf(db.sql, own.json.id), "4242424242424242");
    const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "25.00" }));
    processor.completeCheckout(await sessionOf(db.sql, topup.json.id), "4242424242424242");
    await processor.idle();
    const fingerprints = await db.sql<{ org_id: string; fingerprint: string }[]>`
      select org_id, fingerprint from card_fingerprints where org_id in ${db.sql([referrer.id, referred.id])}`;
    expect(fingerprints).toHaveLength(2);
    expect(new Set(fingerprints.map((f) => f.fingerprint)).size).toBe(1);
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "rejected", reason: "shared_card" });
    clock.advance(15 * DAY);
    await payDueReferrals(contextAt(db.appSql, clock()), settings);
    expect(await referralMovements(db.sql, referrer.id)).toEqual([]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([]);
  });

  it("self-referral by card seen during the holding period: the referrer saves the referred org's card → rejected at payout", async ({
    app,
    processor,
    db,
    clock,
  }) => {
    const { referrer, referred } = await referrerAndReferred(app, ["Late Card A", "Late Card B"]);
    const topup = await requestTopup(app, referred.orgKey, topupBody({ amount: "25.00" }));
    processor.completeCheckout(await sessionOf(db.sql, topup.json.id), "5555555555554444");
    await processor.idle();
    expect((await referralOf(db.sql, referred.id)).state).toBe("qualified");
    // The referrer's customer gets the same card (5555) afterwards.
    await requestTopup(app, referrer.orgKey, topupBody({ amount: "5.00" })); // makes its processor customer
    const [customer] = await db.sql<{ customer_id: string }[]>`
      select customer_id from processor_customers where org_id = ${referrer.id}`;
    processor.addCard(customer?.customer_id as string, "5555555555554444");
    await processor.idle();
    clock.advance(14 * DAY);
    const { id } = await referralOf(db.sql, referred.id);
    expect(await payReferral(contextAt(db.appSql, clock()), settings, { referralId: id })).toBe("rejected");
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "rejected", reason: "shared_card" });
  });

  it("self-referral by processor customer: one customer can never be linked to two orgs (409), so the referred org cannot pay as the referrer", async ({
    app,
    db,
  }) => {
    const { referrer, referred } = await referrerAndReferred(app, ["Customer A", "Customer B"]);
    const customerId = processorId("cus");
    const link = (orgId: string) =>
      app.call("PUT", `/v1/admin/orgs/${orgId}/processor-customer`, {
        key: TEST_ADMIN_KEY,
        body: { customer_id: customerId },
      });
    expect((await link(referrer.id)).status).toBe(201);
    expect((await link(referred.id)).status).toBe(409);
    expect((await referralOf(db.sql, referred.id)).state).toBe("linked");
  });

  it("referral codes: unknown → 400 and no org; a code is matched without case; an org is linked once; the referrer's referrer earns nothing", async ({
    app,
    db,
  }) => {
    const unknown = await app.call("POST", "/v1/admin/orgs", {
      key: TEST_ADMIN_KEY,
      body: { name: "Nobody's", referral_code: "zzzzzzzzzzzz" },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatchObject({ code: "invalid_request" });
    const [count] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from organizations where name = 'Nobody''s'`;
    expect(count?.n).toBe(0);

    const { referrer, referred, code } = await referrerAndReferred(app, ["Top", "Middle"]);
    const again = await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey });
    expect(again.json.code).toBe(code); // stable
    const middleCode = (await app.call("GET", "/v1/billing/referrals", { key: referred.orgKey })).json.code;
    const bottom = await createOrgVia(app, "Bottom", middleCode.toUpperCase());
    const [row] = await db.sql<{ referrer_org_id: string }[]>`
      select referrer_org_id from referrals where referred_org_id = ${bottom.id}`;
    expect(row?.referrer_org_id).toBe(referred.id); // only the direct referrer
    const top = await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey });
    expect(top.json.referrals.map((r: { org_name: string }) => r.org_name)).toEqual(["Middle"]);
  });
});
