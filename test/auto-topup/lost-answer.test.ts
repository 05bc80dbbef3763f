import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it, setAutoTopup, spend } from "./harness.js";

const USD = 1_000_000_000n;

/**
 * A charge whose answer was lost (the processor did it, the connection dropped) is asked again
 * with the same idempotency key. The processor replays its first answer only for the same
 * parameters: the retry must send the card the first request charged, even if the customer made
 * another card the default meanwhile, or the charge can never end.
 */
describe("auto top-up charge asked again after a lost answer", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "autotopup-lost" });

  it("a declined charge whose answer was lost, then a new default card: the charge ends, the next crossing charges the new card", async ({
    app,
    db,
    processor,
    stripe,
    clock,
    workers,
  }) => {
    expect(workers).toBeDefined();
    const org = await cardOrg(app, processor, stripe, "4000000000009995"); // insufficient funds
    const other = processor.addCard(org.customerId, "5555555555554444");
    await waitFor(async () => {
      const res = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
      return res.json.payment_methods.length === 2;
    });
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    // The processor declines and records that, but the answer never reaches us.
    const charging = /^POST \/v1\/payment_intents$/;
    processor.fail({ kind: "unreachable", match: charging, count: 1, after: true });
    // Then the processor is down for a while, so the retries wait for the card change below.
    processor.fail({ kind: "5xx", status: 503, match: charging });
    await spend(app, org, 20); // 40: crossing 1
    await waitFor(
      async () =>
        (await db.sql`select 1 from auto_topup_charges where org_id = ${org.id}`).length === 1 &&
        processor.requests.filter((r) => r.path === "/v1/payment_intents").length >= 2,
      { timeoutMs: 30_000 },
    );
    // The customer makes the other card the default before the retry.
    const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    const otherId = methods.json.payment_methods.find((m: { last4: string }) => m.last4 === "4444")?.id;
    const made = await app.call("POST", `/v1/billing/payment-methods/${otherId}/default`, { key: org.orgKey });
    expect(made.status).toBe(200);
    expect(other.id).toBeDefined();
    processor.clearFaults();
    // The sweep asks again (a charge with no answer for more than 5 s of the clock).
    clock.advance(10_000);
    await waitFor(
      async () => {
        const [c] = await db.sql<{ status: string }[]>`select status from auto_topup_charges where org_id = ${org.id}`;
        return c?.status !== "pending";
      },
      { timeoutMs: 20_000 },
    );
    const [charge] = await db.sql<{ status: string; decline_code: string | null }[]>`
      select status, decline_code from auto_topup_charges where org_id = ${org.id}`;
    expect(charge?.status).toBe("declined");
    // The month's total gave the refused amount back, and the next crossing charges the new card.
    await app.grant(org.id, "20"); // 60
    await spend(app, org, 20); // 40: crossing 2
    await waitFor(async () => (await app.balanceNano(org.orgKey)) === 65n * USD, { timeoutMs: 60_000 });
    const charges = await db.sql<{ status: string }[]>`
      select status from auto_topup_charges where org_id = ${org.id} order by created_at`;
    expect(charges.map((c) => c.status)).toEqual(["declined", "succeeded"]);
    const read = await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey });
    expect(read.json.charged_this_month_nano_usd).toBe(`${25n * USD}`);
    await expectLedgerConsistent(db.sql);
  }, 120_000);
});

describe("auto top-up charge refused here but paid at the processor", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "autotopup-lost-paid" });

  it("its answer lost, the card removed before the retry: the late success still counts against the month", async ({
    app,
    db,
    processor,
    stripe,
    clock,
  }) => {
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "25.00" });
    const charging = /^POST \/v1\/payment_intents$/;
    processor.setWebhookMode("hold");
    try {
      // The processor charges the card, but the answer never reaches us; then it is down a while.
      const before = processor.requests.filter((r) => r.path === "/v1/payment_intents").length;
      processor.fail({ kind: "unreachable", match: charging, count: 1, after: true });
      processor.fail({ kind: "5xx", status: 503, match: charging });
      await spend(app, org, 20); // 40: crossing 1
      await waitFor(
        async () => processor.requests.filter((r) => r.path === "/v1/payment_intents").length >= before + 2,
        {
          timeoutMs: 30_000,
        },
      );
      // The customer removes the card: the retry finds no default card and ends the charge as refused.
      const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
      const removed = await app.call("DELETE", `/v1/billing/payment-methods/${methods.json.payment_methods[0].id}`, {
        key: org.orgKey,
      });
      expect(removed.status).toBe(200);
      processor.clearFaults();
      clock.advance(10_000);
      await waitFor(
        async () =>
          (await db.sql`select 1 from auto_topup_charges where org_id = ${org.id} and status <> 'pending'`).length ===
          1,
        { timeoutMs: 30_000 },
      );
    } finally {
      processor.setWebhookMode("auto");
    }
    // The processor's signed word arrives late: the payment succeeded.
    await processor.release();
    await waitFor(async () => (await app.balanceNano(org.orgKey)) === 65n * USD, { timeoutMs: 30_000 });
    const [charge] = await db.sql<{ status: string }[]>`select status from auto_topup_charges where org_id = ${org.id}`;
    expect(charge?.status).toBe("succeeded");
    // What was charged counts against the month's limit, so no further charge this month.
    const [month] = await db.sql<{ total: bigint }[]>`
      select charged + paid_after_refusal as total from auto_topup_months where org_id = ${org.id}`;
    expect(month?.total).toBe(25n * USD);
    await expectLedgerConsistent(db.sql);
  }, 120_000);
});
