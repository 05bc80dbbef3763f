import { describe, expect } from "vitest";
import { manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

/**
 * A debit that takes the balance below the auto top-up threshold writes one crossing in its own
 * transaction (auto_topup_note_crossing, from metering_batch and watchLowBalance); the workers
 * turn each crossing into at most one charge (test/auto-topup/charges.test.ts).
 */
describe("auto top-up crossings", () => {
  const clock = manualClock(new Date());
  it.scoped({ dbOptions: { max: 16 }, appOptions: { clock } });

  let n = 0;
  /** One usage event of `dollars` (api requests at 0.0001 USD). */
  const spend = (app: TestApp, org: { id: string; gatewayKey: string }, dollars: number) =>
    app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: `x-${++n}`,
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: dollars * 10_000 },
          },
        ],
      },
    });

  const enable = (app: TestApp, org: { orgKey: string }, enabled = true) =>
    app.call("PUT", "/v1/billing/auto-topup", {
      key: org.orgKey,
      body: { enabled, threshold: "50.00", amount: "25.00", monthly_limit: "100.00" },
    });

  it("50 concurrent debits crossing the threshold write exactly one crossing, naming the debit that crossed", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    expect((await enable(app, org)).status).toBe(200);
    const results = await Promise.all(Array.from({ length: 50 }, () => spend(app, org, 1.5)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    const crossings = await db.sql<{ balance: bigint; threshold: bigint; kind: string }[]>`
      select c.balance, c.threshold, t.kind from auto_topup_crossings c join ledger_transactions t on t.id = c.transaction_id
      where c.org_id = ${org.id}`;
    expect(crossings).toHaveLength(1);
    expect(crossings[0]?.kind).toBe("usage");
    expect(crossings[0]?.threshold).toBe(50_000_000_000n);
    expect(crossings[0]?.balance).toBeLessThan(50_000_000_000n);
    // Further debits below the threshold are no new crossing; back above it and down again is.
    await spend(app, org, 1);
    await app.grant(org.id, "60");
    await spend(app, org, 40); // 100 - 75 - 1 + 60 = 84, then 44
    const [count] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from auto_topup_crossings where org_id = ${org.id}`;
    expect(count?.n).toBe(2);
  });

  it("no crossing while auto top-up is off, and none for an org that never set it", async ({ app, db }) => {
    const off = await app.createOrg();
    await app.grant(off.id, "100");
    await enable(app, off, false);
    const never = await app.createOrg();
    await app.grant(never.id, "100");
    await spend(app, off, 60);
    await spend(app, never, 60);
    const rows = await db.sql`select 1 from auto_topup_crossings where org_id = any(${[off.id, never.id]})`;
    expect(rows).toHaveLength(0);
  });

  it("a debit outside metering (a grant's expiry) crosses too", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "40");
    await app.grant(org.id, "30", `exp-${Math.random()}`, {
      expires_at: new Date(clock().getTime() + 60_000).toISOString(),
    });
    await enable(app, org);
    clock.advance(61_000);
    const { expireGrants } = await import("../../src/billing/grants.js");
    const { contextAt } = await import("../support/context.js");
    await expireGrants(contextAt(db.sql, clock()));
    const rows = await db.sql<{ kind: string }[]>`
      select t.kind from auto_topup_crossings c join ledger_transactions t on t.id = c.transaction_id where c.org_id = ${org.id}`;
    expect(rows.map((r) => r.kind)).toEqual(["grant_expiry"]);
  });
});
