import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it, setAutoTopup, spend } from "./harness.js";

const USD = 1_000_000_000n;

/**
 * Auto top-up end to end: debits through the API, crossings decided and charged by the real
 * workers, the fake processor (the real SDK over HTTP) answering per test card, and the credit
 * arriving through its signed webhook.
 */
describe("auto top-up charges", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "autotopup" });

  it("50 concurrent debits crossing the threshold: exactly one charge, keyed by the crossing, credited once", async ({
    app,
    db,
    processor,
    stripe,
    workers,
  }) => {
    expect(workers).toBeDefined();
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "100");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "100.00" });
    const results = await Promise.all(Array.from({ length: 50 }, () => spend(app, org, 1.5)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    // 100 - 75 + 25
    await waitFor(async () => (await app.balanceNano(org.orgKey)) === 50n * USD, { timeoutMs: 60_000 });
    const charges = await db.sql<{ crossing_id: string; status: string; processor_payment_id: string }[]>`
      select crossing_id, status, processor_payment_id from auto_topup_charges where org_id = ${org.id}`;
    expect(charges).toHaveLength(1);
    expect(charges[0]?.status).toBe("succeeded");
    const intents = [...processor.paymentIntents.values()].filter((pi) => pi.customer === org.customerId);
    expect(intents).toHaveLength(1);
    expect(intents[0]).toMatchObject({ amount: 2500, currency: "usd", status: "succeeded", off_session: true });
    const created = processor.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");
    expect(created.map((r) => r.idempotencyKey)).toContain(charges[0]?.crossing_id);
    const topups = await db.sql`select 1 from card_topups where org_id = ${org.id}`;
    expect(topups).toHaveLength(1);
    const read = await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey });
    expect(read.json).toMatchObject({ enabled: true, charged_this_month_nano_usd: `${25n * USD}` });
    // Its event: one topup.succeeded, named by the credit (no Checkout Session made it).
    const events = await db.sql<{ data: { topup_id: string; amount_usd: string } }[]>`
      select data from billing_events where org_id = ${org.id} and type = 'topup.succeeded'`;
    expect(events).toHaveLength(1);
    expect(events[0]?.data.amount_usd).toBe("25");
    const [credit] = await db.sql`select credit_transaction_id from card_topups where org_id = ${org.id}`;
    expect(events[0]?.data.topup_id).toBe(credit?.credit_transaction_id);
    await expectLedgerConsistent(db.sql);
  });

  it("never more than monthly_limit in a calendar month; the next month charges again", async ({
    app,
    db,
    processor,
    stripe,
    clock,
  }) => {
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "50.00" });
    const crossings = async () =>
      db.sql<{ outcome: string | null; reason: string | null }[]>`
        select c.outcome, c.reason from auto_topup_crossings c join ledger_transactions t on t.id = c.transaction_id
        where c.org_id = ${org.id} order by t.seq`;
    const decided = (n: number) =>
      waitFor(async () => (await crossings()).filter((c) => c.outcome).length === n, { timeoutMs: 60_000 });
    const credited = (n: number) =>
      waitFor(async () => (await db.sql`select 1 from card_topups where org_id = ${org.id}`).length === n, {
        timeoutMs: 60_000,
      });
    await spend(app, org, 15); // 45: crossing 1 → +25 = 70
    await decided(1);
    await credited(1);
    await spend(app, org, 30); // 40: crossing 2 → +25 = 65 (the month is at its limit)
    await decided(2);
    await credited(2);
    await spend(app, org, 20); // 45: crossing 3 → skipped
    await decided(3);
    expect((await crossings()).map((c) => c.reason ?? c.outcome)).toEqual(["charged", "charged", "monthly_limit"]);
    // A month later (UTC calendar): charged again.
    const now = clock();
    clock.set(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 0, 0, 5)));
    await app.grant(org.id, "10"); // 55
    await spend(app, org, 10); // 45: crossing 4
    await decided(4);
    await credited(3);
    expect((await crossings()).at(-1)?.outcome).toBe("charged");
    const months = await db.sql<{ month: string; charged: bigint }[]>`
      select month::text, charged from auto_topup_months where org_id = ${org.id} order by month`;
    expect(months.map((m) => m.charged)).toEqual([50n * USD, 25n * USD]);
    await expectLedgerConsistent(db.sql);
  });

  it("declined three times in a row turns auto top-up off and says so", async ({
    app,
    db,
    processor,
    stripe,
    logs,
  }) => {
    const org = await cardOrg(app, processor, stripe, "4000000000000002");
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    for (let i = 1; i <= 3; i++) {
      await spend(app, org, 20); // below 50
      await waitFor(
        async () =>
          (await db.sql`select 1 from auto_topup_charges where org_id = ${org.id} and status = 'declined'`).length ===
          i,
        { timeoutMs: 60_000 },
      );
      if (i < 3) {
        const settings = await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey });
        expect(settings.json).toMatchObject({ enabled: true, disabled_reason: null });
        await app.grant(org.id, "20"); // back above the threshold for the next crossing
      }
    }
    const settings = await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey });
    expect(settings.json).toMatchObject({
      enabled: false,
      disabled_reason: "declined",
      charged_this_month_nano_usd: "0",
    });
    const notices = await db.sql<{ kind: string; details: { reason: string } }[]>`
      select kind, details from billing_notices where org_id = ${org.id}`;
    expect(notices).toEqual([
      expect.objectContaining({
        kind: "auto_topup_disabled",
        details: expect.objectContaining({ reason: "declined" }),
      }),
    ]);
    expect(logs.some((l) => l.org_id === org.id && String(l.msg).startsWith("auto top-up turned off"))).toBe(true);
    const disabled = await app.call("GET", "/v1/billing/events?type=auto_topup.disabled", { key: org.orgKey });
    expect(disabled.json.data).toEqual([
      expect.objectContaining({ data: { reason: "declined", message: expect.stringContaining("declined 3 times") } }),
    ]);
    // Off: the next crossing is not even written.
    await app.grant(org.id, "20");
    await spend(app, org, 20);
    expect(await db.sql`select 1 from auto_topup_charges where org_id = ${org.id}`).toHaveLength(3);
    // On again (PUT): the count of declines starts over.
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    const [s] = await db.sql<{ consecutive_declines: number }[]>`
      select consecutive_declines from auto_topup_settings where org_id = ${org.id}`;
    expect(s?.consecutive_declines).toBe(0);
    await expectLedgerConsistent(db.sql);
  });

  it("a card that needs the customer (requires_action) turns auto top-up off at once", async ({
    app,
    db,
    processor,
    stripe,
    logs,
  }) => {
    const org = await cardOrg(app, processor, stripe, "4000002760003184");
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    await spend(app, org, 20);
    await waitFor(
      async () =>
        (await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey })).json.disabled_reason ===
        "requires_action",
      { timeoutMs: 60_000 },
    );
    const [charge] = await db.sql<{ status: string }[]>`select status from auto_topup_charges where org_id = ${org.id}`;
    expect(charge?.status).toBe("requires_action");
    expect(await app.balanceNano(org.orgKey)).toBe(40n * USD);
    expect(logs.some((l) => l.org_id === org.id && l.reason === "requires_action")).toBe(true);
    const notices =
      await db.sql`select 1 from billing_notices where org_id = ${org.id} and kind = 'auto_topup_disabled'`;
    expect(notices).toHaveLength(1);
  });

  it("nothing while a charge is in flight (its webhook not yet arrived); the late webhook credits it once", async ({
    app,
    db,
    processor,
    stripe,
  }) => {
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    processor.setWebhookMode("hold");
    try {
      await spend(app, org, 20); // 40: crossing 1, charged at the processor, not yet credited
      await waitFor(
        async () =>
          (await db.sql`select 1 from auto_topup_charges where org_id = ${org.id} and processor_payment_id is not null`)
            .length === 1,
        { timeoutMs: 60_000 },
      );
      await app.grant(org.id, "20"); // 60
      await spend(app, org, 20); // 40: crossing 2, while 1 is in flight
      await waitFor(
        async () =>
          (await db.sql`select 1 from auto_topup_crossings where org_id = ${org.id} and reason = 'charge_in_flight'`)
            .length === 1,
        { timeoutMs: 60_000 },
      );
    } finally {
      processor.setWebhookMode("auto");
    }
    await processor.release({ copies: 2 });
    await waitFor(async () => (await app.balanceNano(org.orgKey)) === 65n * USD, { timeoutMs: 30_000 });
    const charges = await db.sql<{ status: string }[]>`select status from auto_topup_charges where org_id = ${org.id}`;
    expect(charges.map((c) => c.status)).toEqual(["succeeded"]);
    await expectLedgerConsistent(db.sql);
  });
  it("the processor answers 5xx after making the charge, twice: the job's retry with the same key is the same payment", {
    timeout: 90_000,
  }, async ({ app, db, processor, stripe }) => {
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "500.00" });
    // The webhook waits until a retry has the answer, so the retries are what is tested.
    processor.setWebhookMode("hold");
    processor.fail({ kind: "5xx", status: 502, after: true, count: 2, match: /^POST \/v1\/payment_intents$/ });
    try {
      await spend(app, org, 20); // 40: crossing; the first two answers are 502s though the payment was made
      await waitFor(
        async () =>
          (await db.sql`select 1 from auto_topup_charges where org_id = ${org.id} and processor_payment_id is not null`)
            .length === 1,
        { timeoutMs: 60_000 },
      );
    } finally {
      processor.clearFaults();
      processor.setWebhookMode("auto");
    }
    await processor.release();
    await waitFor(async () => (await app.balanceNano(org.orgKey)) === 65n * USD, { timeoutMs: 30_000 });
    const intents = [...processor.paymentIntents.values()].filter((pi) => pi.customer === org.customerId);
    expect(intents).toHaveLength(1);
    const attempts = processor.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");
    const [charge] = await db.sql<{ crossing_id: string; status: string }[]>`
      select crossing_id, status from auto_topup_charges where org_id = ${org.id}`;
    expect(charge?.status).toBe("succeeded");
    const mine = attempts.filter((r) => r.idempotencyKey === charge?.crossing_id);
    expect(mine).toHaveLength(3);
    await expectLedgerConsistent(db.sql);
  });
});
