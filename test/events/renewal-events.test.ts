import { describe, expect } from "vitest";
import { cardOrg, chargesTest as it } from "../auto-topup/harness.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { waitFor } from "../support/process.js";

// invoice.payment_failed is written by the renewal's own transaction (src/billing/renewals/collect-renewal.ts).
describe("renewal events", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewal-events" });

  it("a renewal charge the card declines is one invoice.payment_failed for that attempt", async ({
    app,
    db,
    processor,
    stripe,
    clock,
    workers,
  }) => {
    expect(workers).toBeDefined();
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await cardOrg(app, processor, stripe, "4000000000000002");
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(sub.status).toBe(200);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    const closed = await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    expect(closed.json).toMatchObject({ invoices_created: 1 });
    const [invoice] = await db.sql<{ id: string; number: string; amount_due: bigint }[]>`
      select id, number, amount_due from invoices where org_id = ${org.id}`;
    if (!invoice) throw new Error("no invoice");
    expect(invoice.amount_due).toBeGreaterThan(0n);
    await waitFor(
      async () =>
        (await db.sql`select 1 from billing_events where org_id = ${org.id} and type = 'invoice.payment_failed'`)
          .length > 0,
      { timeoutMs: 60_000, what: "invoice.payment_failed" },
    );
    const events = await app.call("GET", "/v1/billing/events?type=invoice.payment_failed", { key: org.orgKey });
    expect(events.json.data).toEqual([
      expect.objectContaining({
        data: {
          invoice_id: invoice.id,
          number: invoice.number,
          attempt: 1,
          amount: Number(invoice.amount_due) / 1e9,
          amount_usd: expect.any(String),
          amount_nano_usd: invoice.amount_due.toString(),
          failure_code: expect.any(String),
        },
      }),
    ]);
    const [attempts] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from renewal_charges where invoice_id = ${invoice.id} and status = 'failed'`;
    expect(attempts?.n).toBe(1);
    expect(JSON.stringify(events.json)).not.toMatch(/pi_|ch_|cus_|pm_/);
  });
});
