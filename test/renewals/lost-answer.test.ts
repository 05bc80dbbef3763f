import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it, spend } from "../auto-topup/harness.js";

const DAY = 86_400_000;

/**
 * A renewal attempt whose answer was lost is asked again with the same idempotency key, which the
 * processor replays only for the same parameters. When the customer made another card the default
 * meanwhile, the retry is refused as key reuse: the attempt must still end (the processor's signed
 * payment_intent.payment_failed says how), so the schedule goes on and the next attempt charges
 * the new card.
 */
describe("renewal attempt asked again after a lost answer", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewals-lost" });

  it("declined with its answer lost, then a new default card: the attempt fails, the next one pays the invoice", async ({
    app,
    db,
    processor,
    stripe,
    clock,
  }) => {
    const org = await cardOrg(app, processor, stripe, "4000000000009995"); // insufficient funds
    processor.addCard(org.customerId, "5555555555554444");
    await waitFor(
      async () =>
        (await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey })).json.payment_methods.length === 2,
    );
    const charging = /^POST \/v1\/payment_intents$/;
    processor.fail({ kind: "unreachable", match: charging, count: 1, after: true });
    processor.fail({ kind: "5xx", status: 503, match: charging }); // down until the card is changed
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "team" },
    });
    expect(sub.status).toBe(200);
    await spend(app, org, Number((await app.balanceNano(org.orgKey)) / 1_000_000_000n));
    clock.advance(3 * DAY);
    const closed = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: org.id, end_current_cycle_now: true },
    });
    expect(closed.status).toBe(200);
    const invoice = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data[0] as {
      id: string;
      issued_at: string;
    };
    await waitFor(async () => processor.requests.filter((r) => r.path === "/v1/payment_intents").length >= 2, {
      timeoutMs: 30_000,
    });
    const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    const otherId = methods.json.payment_methods.find((m: { last4: string }) => m.last4 === "4444")?.id;
    expect((await app.call("POST", `/v1/billing/payment-methods/${otherId}/default`, { key: org.orgKey })).status).toBe(
      200,
    );
    processor.clearFaults();
    const attempts = async () =>
      db.sql<{ attempt: number; status: string }[]>`
        select attempt, status from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    await waitFor(async () => (await attempts())[0]?.status === "failed", { timeoutMs: 20_000 });
    clock.set(new Date(new Date(invoice.issued_at).getTime() + DAY));
    await waitFor(
      async () =>
        (await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json.status === "paid",
      { timeoutMs: 60_000 },
    );
    expect((await attempts()).map((a) => a.status)).toEqual(["failed", "succeeded"]);
    const failures =
      await db.sql`select 1 from billing_events where org_id = ${org.id} and type = 'invoice.payment_failed'`;
    expect(failures).toHaveLength(1);
    await expectLedgerConsistent(db.sql);
  }, 120_000);
});
