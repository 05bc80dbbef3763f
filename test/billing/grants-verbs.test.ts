import { describe, expect } from "vitest";
import { at } from "../../src/billing/context.js";
import { getBalance } from "../../src/billing/balance.js";
import { grantCredits } from "../../src/billing/grants.js";
import { createOrganization } from "../../src/billing/organizations.js";
import { dbTest as it } from "../support/fixtures.js";
import { inRollback } from "../support/rollback.js";

/** Grant and balance rules at the verb level, each test in its own rolled-back transaction. */
const t0 = new Date("2030-01-01T00:00:00Z");
const hour = 3_600_000;
const orgId = "org_grants_verbs";

describe("grants and balance (verbs, rolled back)", () => {
  it.for([
    {
      name: "a grant without expiry is spendable later",
      grants: [{ nano: 5_000_000_000n, expiresInH: null }],
      afterH: 48,
      credits: 5_000_000_000n,
    },
    {
      name: "a grant not yet expired is spendable",
      grants: [{ nano: 2_500_000_000n, expiresInH: 24 }],
      afterH: 23,
      credits: 2_500_000_000n,
    },
    {
      name: "an expired grant is not spendable",
      grants: [{ nano: 2_500_000_000n, expiresInH: 24 }],
      afterH: 24,
      credits: 0n,
    },
    {
      name: "only the expired one of two grants is gone",
      grants: [
        { nano: 1_000_000_000n, expiresInH: 1 },
        { nano: 7n, expiresInH: null },
      ],
      afterH: 2,
      credits: 7n,
    },
  ])("$name", async (c, { db }) => {
    const balance = await inRollback(db, async (ctx) => {
      const now = at(ctx, t0);
      await createOrganization(now, { id: orgId, name: "Verbs" });
      for (const [i, g] of c.grants.entries()) {
        const expiresAt = g.expiresInH === null ? null : new Date(t0.getTime() + g.expiresInH * hour);
        await grantCredits(now, { orgId, amount: g.nano, reason: "test", expiresAt, idempotencyKey: `k${i}` });
      }
      return getBalance(at(ctx, new Date(t0.getTime() + c.afterH * hour)), { orgId });
    });
    expect(balance).toMatchObject({ credits: c.credits, held: 0n, balance: c.credits });
  });

  it("a grant shows in the balance at once", async ({ db }) => {
    await inRollback(db, async (ctx) => {
      const now = at(ctx, t0);
      await createOrganization(now, { id: orgId, name: "Verbs" });
      expect((await getBalance(now, { orgId })).credits).toBe(0n);
      await grantCredits(now, { orgId, amount: 142_870_000_000n, reason: "test", idempotencyKey: "once" });
      expect((await getBalance(now, { orgId })).credits).toBe(142_870_000_000n);
    });
  });

  it("nothing leaks between tests: the org the others made (same id) is not there", async ({ db }) => {
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from organizations where id = ${orgId}`;
    expect(row?.n).toBe(0);
    const [grants] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from credit_grants where org_id = ${orgId}`;
    expect(grants?.n).toBe(0);
  });

  it("an error inside the transaction reaches the test, and still nothing is kept", async ({ db }) => {
    await expect(
      inRollback(db, async (ctx) => {
        await createOrganization(at(ctx, t0), { id: orgId, name: "Verbs" });
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from organizations where id = ${orgId}`;
    expect(row?.n).toBe(0);
  });
});
