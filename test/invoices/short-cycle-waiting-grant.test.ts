/**
 * A short cycle's plan credits are "its plan's share of the month less what the month's grants
 * already gave". A grant ended early by a failed renewal, whose end waits for a live hold taken on
 * it, was counted by what it had consumed so far; the hold then drew on it when it settled, and its
 * amount was granted twice (helper-91). Counted by the hold's estimate instead, a settle above it
 * was granted twice again and one below it lost credits (helper-92): what such a grant gives is not
 * known until the hold settles or lapses. So the cycle cannot end early meanwhile (409), and once
 * the hold is settled the short cycle gets exactly the share less what the grant gave.
 *
 * Story: Team since October, October's $200 never paid; a $40 hold on 7 November 23:00 (TTL 1
 * day) on November's $250 Team grant; the fourth renewal attempt fails on 8 November and the org
 * moves to Free (the grant ends, its end waiting for the hold); 01:00 back to Team (pending); the
 * hold settles at 01:30 and the operator ends the cycle at 02:00, or the operator asks at 02:00
 * (refused), the hold settles at 03:00 and the cycle ends then. The same story with holds that
 * settle for more or less than their estimate, or lapse, before the early end (helper-92).
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import type { TestDatabase } from "../support/database.js";
import { appTest as it } from "../support/fixtures.js";
import { closeCycles, subscribeTo } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;
const TEAM_MONTH = 250n * 1_000_000_000n;

/** Team's share of the month for the short cycle [start, 1 Dec). */
const shareFrom = (start: Date) =>
  (TEAM_MONTH * BigInt(Date.parse("2026-12-01T00:00:00Z") - start.getTime())) / BigInt(30 * DAY);

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
          quantities: { requests }, // $0.0001 a request
          hold_id: holdId,
        },
      ],
    },
  });
  expect(used.json.results[0], used.text).toMatchObject({ status: "recorded", hold_outcome: "released" });
}

/**
 * The story up to 01:00 on 8 November: a hold of `estimate` requests on November's Team grant at
 * 23:00 on the 7th, the org moved to Free by the failed renewal (the grant's end waiting for the
 * hold), and back to Team (pending).
 */
async function downgradedWithHold(app: TestApp, db: TestDatabase, hold: { estimate: number; ttl: number }) {
  clock.set(new Date("2026-10-05T10:00:00Z"));
  const org = await app.createOrg(`waiting grant ${hold.estimate} ${hold.ttl} ${Math.random()}`);
  expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
  clock.set(new Date("2026-11-01T00:00:05Z"));
  await closeCycles(app, org.id);
  const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
    select id, status, issued_at from invoices where org_id = ${org.id}`;
  expect(oct?.status).toBe("open");
  const processor = {} as Processor; // no card: every attempt fails
  const attempt = async (d: number) => {
    const ctx = contextAt(db.sql, new Date((oct?.issued_at.getTime() ?? 0) + d * DAY));
    await ctx.catalog.refresh();
    return collectRenewal(ctx, { invoiceId: oct?.id ?? "", processor });
  };
  for (const d of [0, 1, 3]) await attempt(d);

  clock.set(new Date("2026-11-07T23:00:00Z"));
  const made = await app.call("POST", "/v1/billing/authorize", {
    key: org.gatewayKey,
    body: { org_id: org.id, product: "api", estimate: { requests: hold.estimate }, ttl_seconds: hold.ttl },
  });
  expect(made.status, made.text).toBe(201);

  expect(await attempt(7)).toBe("failed");
  expect(await attempt(7)).toBe("downgraded");
  const [ended] = await db.sql<{ expired_at: Date | null }[]>`
    select expired_at from credit_grants where org_id = ${org.id} and source = 'plan' and created_at >= '2026-11-01'`;
  expect(ended?.expired_at).toBeNull(); // its end waits for the hold

  clock.set(new Date("2026-11-08T01:00:00Z"));
  expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
  return { org, holdId: made.json.hold_id as string };
}

/** November's Team grants: the ended one (what was spent of it) and the short cycle's. */
async function novemberGrants(db: TestDatabase, orgId: string) {
  const [first, short] = await db.sql<{ amount: bigint; consumed: bigint }[]>`
    select amount, consumed from credit_grants where org_id = ${orgId} and source = 'plan'
      and created_at >= '2026-11-01' order by created_at`;
  return { spent: first?.consumed, short: short?.amount, total: (first?.consumed ?? 0n) + (short?.amount ?? 0n) };
}

describe("a short cycle after a downgrade whose ended grant waits for a hold", () => {
  it.scoped({ appOptions: { clock } });

  it.for([{ settleBeforeClose: true }, { settleBeforeClose: false }])(
    "hold settled before the early end is asked: $settleBeforeClose; the short cycle gets the share less what the ended grant gave",
    async ({ settleBeforeClose }, { app, db }) => {
      const { org, holdId } = await downgradedWithHold(app, db, { estimate: 400_000, ttl: 86_400 }); // $40
      if (settleBeforeClose) {
        clock.set(new Date("2026-11-08T01:30:00Z"));
        await settle(app, org, holdId, 400_000);
      }
      clock.set(new Date("2026-11-08T02:00:00Z"));
      if (!settleBeforeClose) {
        const refused = await closeCycles(app, org.id, true);
        expect({ status: refused.status, code: refused.json?.error?.code }, refused.text).toEqual({
          status: 409,
          code: "conflict",
        });
        expect(refused.json.error.message).toMatch(/wait for a live hold/);
        clock.set(new Date("2026-11-08T03:00:00Z"));
        await settle(app, org, holdId, 400_000);
      }
      const closedAt = clock();
      const closed = await closeCycles(app, org.id, true);
      expect(closed.status, closed.text).toBe(200);
      const given = await novemberGrants(db, org.id);
      expect(given.spent).toBe(40_000_000_000n); // the hold's $40 was drawn from the ended grant either way
      const share = shareFrom(closedAt);
      expect({ short: given.short, total: given.total }).toEqual({ short: share - 40_000_000_000n, total: share });
    },
  );

  type Outcome = { name: string; requests: number | null; ttl: number; estimate?: number };
  it.for<Outcome>([
    { name: "settled for $100 (est. $40)", requests: 1_000_000, ttl: 86_400 },
    { name: "settled for $10 (est. $40)", requests: 100_000, ttl: 86_400 },
    { name: "settled for $250 (est. $1)", requests: 2_500_000, ttl: 86_400, estimate: 10_000 },
    { name: "lapsed unsettled", requests: null, ttl: 9_000 }, // lapses 01:30
  ])(
    "a hold $name before the early end: November's Team grants give the cycle's share in total",
    async (c, { app, db }) => {
      const { org, holdId } = await downgradedWithHold(app, db, { estimate: c.estimate ?? 400_000, ttl: c.ttl });
      if (c.requests !== null) {
        clock.set(new Date("2026-11-08T01:30:00Z"));
        await settle(app, org, holdId, c.requests);
      }
      clock.set(new Date("2026-11-08T02:00:00Z"));
      const closed = await closeCycles(app, org.id, true);
      expect(closed.status, closed.text).toBe(200);
      const given = await novemberGrants(db, org.id);
      const spent = c.requests === null ? 0n : BigInt(c.requests) * 100_000n;
      expect(given.spent).toBe(spent); // the hold's cost was drawn from the ended grant either way
      const share = shareFrom(new Date("2026-11-08T02:00:00Z"));
      // Spent beyond the share, the short cycle gets nothing and the month gave what was spent.
      const expected = spent >= share ? { short: undefined, total: spent } : { short: share - spent, total: share };
      expect({ short: given.short, total: given.total }).toEqual(expected);
    },
  );
});
