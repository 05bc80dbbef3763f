/**
 * A short cycle after a failed renewal's downgrade, when the month's ended Team grant had a hold
 * on it that settled for more or less than its estimate, or lapsed, before the early end: the
 * short cycle gets the month's share less what the ended grant gave, so November's Team grants
 * give the cycle's share in total (helper-92). While such a hold is live the early end is refused
 * (test/invoices/short-cycle-waiting-grant.test.ts).
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { closeCycles, subscribeTo } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;

async function settle(app: TestApp, org: { id: string; gatewayKey: string }, holdId: string, requests: number) {
  const used = await app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: [
        {
          idempotency_key: "u-hold",
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "api",
          quantities: { requests },
          hold_id: holdId,
        },
      ],
    },
  });
  expect(used.json.results[0], used.text).toMatchObject({ status: "recorded", hold_outcome: "released" });
}

type Case = { name: string; requests: number | null; ttl: number; estimate?: number };
const cases: Case[] = [
  { name: "settled for $100 (est. $40) before the close", requests: 1_000_000, ttl: 86_400 },
  { name: "settled for $10 (est. $40) before the close", requests: 100_000, ttl: 86_400 },
  {
    name: "settled for $250 (est. $1) before the close",
    requests: 2_500_000,
    ttl: 86_400,
    estimate: 10_000,
  },
  { name: "lapsed unsettled before the close", requests: null, ttl: 9_000 }, // lapses 01:30
];

describe("helper-92: a waiting grant's hold settling for other than its estimate", () => {
  it.scoped({ appOptions: { clock } });

  it.for(cases)("$name — November's Team grants give the cycle's share in total", async (c, { app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg(`h92 ${c.name}`);
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
      select id, status, issued_at from invoices where org_id = ${org.id}`;
    expect(oct?.status).toBe("open");
    const processor = {} as Processor;
    const attempt = async (d: number) => {
      const ctx = contextAt(db.sql, new Date((oct?.issued_at.getTime() ?? 0) + d * DAY));
      await ctx.catalog.refresh();
      return collectRenewal(ctx, { invoiceId: oct?.id ?? "", processor });
    };
    for (const d of [0, 1, 3]) await attempt(d);

    clock.set(new Date("2026-11-07T23:00:00Z"));
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: c.estimate ?? 400_000 }, ttl_seconds: c.ttl },
    });
    expect(hold.status, hold.text).toBe(201);
    const holdId = hold.json.hold_id ?? hold.json.id;

    expect(await attempt(7)).toBe("failed");
    expect(await attempt(7)).toBe("downgraded");

    clock.set(new Date("2026-11-08T01:00:00Z"));
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
    if (c.requests !== null) {
      clock.set(new Date("2026-11-08T01:30:00Z"));
      await settle(app, org, holdId, c.requests);
    }
    clock.set(new Date("2026-11-08T02:00:00Z"));
    const closed = await closeCycles(app, org.id, true);
    expect(closed.status, closed.text).toBe(200);
    clock.set(new Date("2026-11-08T04:00:00Z"));

    const grants = await db.sql<{ amount: bigint; consumed: bigint }[]>`
      select amount, consumed from credit_grants where org_id = ${org.id} and source = 'plan'
        and created_at >= '2026-11-01' order by created_at`;
    const [first, short] = grants;
    const spent = c.requests === null ? 0n : BigInt(c.requests) * 100_000n;
    expect(first?.consumed).toBe(spent); // the hold's cost was drawn from the ended grant either way
    const share =
      (250n * 1_000_000_000n * BigInt(Date.parse("2026-12-01T00:00:00Z") - Date.parse("2026-11-08T02:00:00Z"))) /
      BigInt(30 * DAY);
    const total = (first?.consumed ?? 0n) + (short?.amount ?? 0n);
    // Spent beyond the share, the short cycle gets nothing and the month gave what was spent.
    const expected = spent >= share ? { short: undefined, total: spent } : { short: share - spent, total: share };
    expect({ short: short?.amount, total }).toEqual(expected);
  });
});
