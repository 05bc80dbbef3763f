import { describe, expect } from "vitest";
import { cardOrg, chargesTest as it, setAutoTopup, spend } from "./harness.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";

const USD = 1_000_000_000n;
const CHARGING = /^POST \/v1\/payment_intents$/;

/**
 * From helper-85: a charge ended as refused whose late success arrives in the NEXT calendar
 * month, sent several times (the same event again and fresh copies): it counts once, in its own
 * month; the next month is not blocked by it; the org is credited once.
 */
describe("auto top-up: late success in the next month, resent", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "late-success-next-month" });

  it("counts once in the charge's month and leaves the next month free", async ({
    app,
    db,
    processor,
    stripe,
    clock,
    workers,
  }) => {
    expect(workers).toBeDefined();
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    expect((await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "25.00" })).status).toBe(
      200,
    );
    const charges = () =>
      db.sql<{ id: string; status: string; month: string }[]>`
        select id, status, month::text from auto_topup_charges where org_id = ${org.id} order by created_at`;
    const months = () =>
      db.sql<{ month: string; charged: bigint; paid_after_refusal: bigint }[]>`
        select month::text, charged, paid_after_refusal from auto_topup_months where org_id = ${org.id} order by month`;
    const piRequests = () => processor.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");

    processor.setWebhookMode("hold");
    const before = piRequests().length;
    processor.fail({ kind: "unreachable", match: CHARGING, count: 1, after: true });
    processor.fail({ kind: "5xx", status: 503, match: CHARGING });
    await spend(app, org, 20); // 60 -> 40: crossing 1 (A)
    await waitFor(async () => piRequests().length >= before + 2, { timeoutMs: 30_000 });
    const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(
      (
        await app.call("DELETE", `/v1/billing/payment-methods/${methods.json.payment_methods[0].id}`, {
          key: org.orgKey,
        })
      ).status,
    ).toBe(200);
    processor.clearFaults();
    clock.advance(10_000);
    await waitFor(async () => (await charges())[0]?.status === "declined", { timeoutMs: 30_000 });

    // Into the next calendar month (UTC).
    const now = clock();
    const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 0, 5));
    clock.advance(next.getTime() - now.getTime());

    // A's events now, twice each, and fresh copies of its payment_intent.succeeded.
    const held = processor.held();
    await processor.release({ copies: 2 });
    for (const e of held.filter((e) => e.type === "payment_intent.succeeded"))
      for (let i = 0; i < 2; i++) await processor.deliver({ ...e, id: `${e.id}_h85copy${i}` });
    processor.setWebhookMode("auto");
    await processor.idle();
    await waitFor(async () => (await charges())[0]?.status === "succeeded", { timeoutMs: 30_000 });
    expect(await app.balanceNano(org.orgKey)).toBe(65n * USD);

    // A new card; a crossing in the new month is charged.
    const cardB = processor.addCard(org.customerId, "4242424242424242");
    let bId = "";
    await waitFor(async () => {
      const res = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
      bId = res.json.payment_methods.find((m: { processor_id?: string; id: string }) => m.id)?.id ?? "";
      return bId !== "";
    });
    expect((await app.call("POST", `/v1/billing/payment-methods/${bId}/default`, { key: org.orgKey })).status).toBe(
      200,
    );
    expect(cardB.id).toBeTruthy();
    await spend(app, org, 20); // 65 -> 45: crossing 2 (new month)
    await waitFor(async () => (await charges()).length === 2 && (await charges())[1]?.status === "succeeded", {
      timeoutMs: 60_000,
    });
    await processor.idle();
    const m = await months();
    expect({
      months: m.map((r) => ({ charged: r.charged, paidAfterRefusal: r.paid_after_refusal })),
      balance: await app.balanceNano(org.orgKey),
    }).toEqual({
      months: [
        { charged: 0n, paidAfterRefusal: 25n * USD },
        { charged: 25n * USD, paidAfterRefusal: 0n },
      ],
      balance: 70n * USD,
    });
    await expectLedgerConsistent(db.sql);
  }, 180_000);
});
