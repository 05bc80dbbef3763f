/**
 * An organization's queued adjustments, each counted by its size, together stay within one
 * adjustment's limit ($9,000,000): an invoice sums them with its usage and plan, and enough of them once took that sum
 * past PostgreSQL's bigint, so every close of the org failed with a 500 and its cycles never closed
 * again (found by a helper's attack).
 */
import { describe, expect } from "vitest";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

const clock = manualClock(new Date("2026-11-10T00:00:00Z"));
const adjust = (app: TestApp, orgId: string, key: string, amount: string) =>
  app.call("POST", `/v1/admin/orgs/${orgId}/adjustments`, {
    key: TEST_ADMIN_KEY,
    headers: { "idempotency-key": key },
    body: { amount, description: `adjustment ${key}` },
  });

describe("queued adjustments", () => {
  it.scoped({ appOptions: { clock } });

  it("are refused past $9,000,000 in size (400 naming the amount), replays still answer, and the close issues the invoice", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-10T00:00:00Z"));
    const org = await app.createOrg("Adjusted");
    expect((await adjust(app, org.id, "a", "9000000")).status).toBe(201);
    const over = await adjust(app, org.id, "b", "0.000000001");
    expect(over.status).toBe(400);
    expect(over.json.error).toMatchObject({ code: "invalid_request", param: "amount" });
    expect((await adjust(app, org.id, "a", "9000000")).json.replayed).toBe(true);
    // Counted by size: a credit does not make room for more (+9M and -9M pairs queued from clocks
    // either side of a boundary would otherwise overflow the close that takes only the first ones).
    expect((await adjust(app, org.id, "c", "-1")).status).toBe(400);

    clock.set(new Date("2026-12-01T00:01:00Z"));
    const closed = await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    expect(closed.status, closed.text).toBe(200);
    const [invoice] = await db.sql<{ subtotal: bigint }[]>`select subtotal from invoices where org_id = ${org.id}`;
    expect(invoice?.subtotal).toBe(9_000_000n * 1_000_000_000n);
    // Applied to that invoice, they no longer count: the next cycle's may use the whole limit again.
    expect((await adjust(app, org.id, "h", "9000000")).status).toBe(201);
  });

  it("racing ones that fit alone but not all together: only those that fit are queued", async ({ app, db }) => {
    clock.set(new Date("2026-11-10T00:00:00Z"));
    for (let round = 0; round < 5; round++) {
      const org = await app.createOrg(`Racing ${round}`);
      const answers = await Promise.all(["x", "y", "z"].map((key) => adjust(app, org.id, key, "4000000")));
      expect(answers.map((r) => r.status).sort()).toEqual([201, 201, 400]);
      const [queued] = await db.sql<{ total: bigint }[]>`
        select sum(amount)::bigint as total from invoice_adjustments where org_id = ${org.id}`;
      expect(queued?.total).toBe(8_000_000n * 1_000_000_000n);
    }
  });
});
