import fc from "fast-check";
import { describe, expect } from "vitest";
import { grantsLeftAfterHolds } from "../../src/billing/money-rules.js";
import { createTestApp, manualClock } from "../support/app.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * grantsLeftAfterHolds (what a cycle close counts on the live holds to draw from the grants) against
 * what settling those holds in full, one by one in the order they were taken, really draws in
 * PostgreSQL (consume_expiring_grants), on generated stories of expiring grants, holds and time
 * passing. Settled once every grant has expired, a hold draws only on the grants live when it was
 * taken: exactly the prediction. Settled at once, it may also draw on grants made after it, so each
 * grant keeps at most what was predicted, never more (counting those draws let a close spend what a
 * hold needed once the grant had expired: helper-89).
 */
const step = fc.oneof(
  fc.record({
    kind: fc.constant("grant" as const),
    cents: fc.integer({ min: 1, max: 300 }),
    ttl: fc.integer({ min: 1, max: 30 }),
  }),
  // The "api" product costs $0.0001 a request: 1 to 3 USD a hold.
  fc.record({ kind: fc.constant("hold" as const), requests: fc.integer({ min: 10_000, max: 30_000 }) }),
  fc.record({ kind: fc.constant("advance" as const), seconds: fc.integer({ min: 1, max: 15 }) }),
);

describe("grantsLeftAfterHolds", () => {
  it("is what settling the live holds in full leaves of each grant, or less if they settle while newer grants are live", async ({
    db,
  }) => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 14 }), fc.boolean(), async (steps, afterExpiry) => {
        const clock = manualClock(new Date("2026-11-10T00:00:00Z"));
        const app = createTestApp({ sql: db.appSql, clock });
        const org = await app.createOrg();
        await app.grant(org.id, "1000.00"); // never expires: what the grants cannot cover
        const requestsOf = new Map<string, number>();
        for (const s of steps) {
          if (s.kind === "advance") clock.advance(s.seconds * 1000);
          else if (s.kind === "grant")
            await app.grant(org.id, (s.cents / 100).toFixed(2), `g-${Math.random()}`, {
              expires_at: new Date(clock().getTime() + s.ttl * 1000).toISOString(),
            });
          else {
            const hold = await app.call("POST", "/v1/billing/authorize", {
              key: org.gatewayKey,
              body: { org_id: org.id, product: "api", estimate: { requests: s.requests }, ttl_seconds: 3600 },
            });
            expect(hold.status, hold.text).toBe(201);
            requestsOf.set(hold.json.hold_id, s.requests);
          }
        }
        const grantsNow = async () =>
          db.sql<{ id: string; free: bigint; created_at: Date; expires_at: Date }[]>`
            select id, amount - consumed as free, created_at, expires_at from credit_grants
            where org_id = ${org.id} and expires_at is not null and expired_at is null order by expires_at, id`;
        const holds = await db.sql<{ id: string; amount: bigint; created_at: Date }[]>`
          select id, amount, created_at from holds where org_id = ${org.id} and status = 'active' order by created_at, id`;
        const predicted = grantsLeftAfterHolds(
          (await grantsNow()).map((g) => ({
            id: g.id,
            free: BigInt(g.free),
            createdAt: g.created_at,
            expiresAt: g.expires_at,
          })),
          holds.map((h) => ({ amount: BigInt(h.amount), createdAt: h.created_at })),
        );
        if (afterExpiry) clock.advance(60_000); // past every grant (at most 30 s), within every hold
        for (const h of holds) {
          const used = await app.call("POST", "/v1/billing/usage", {
            key: org.gatewayKey,
            body: {
              events: [
                {
                  idempotency_key: `settle-${h.id}`,
                  org_id: org.id,
                  timestamp: clock().toISOString(),
                  product: "api",
                  quantities: { requests: requestsOf.get(h.id) },
                  hold_id: h.id,
                },
              ],
            },
          });
          expect(used.json.results[0], used.text).toMatchObject({ status: "recorded" });
        }
        const settled = new Map((await grantsNow()).map((g) => [g.id, BigInt(g.free)]));
        if (afterExpiry) expect(settled).toEqual(predicted);
        else for (const [id, free] of settled) expect(free <= (predicted.get(id) ?? 0n), id).toBe(true);
      }),
      { numRuns: 40 },
    );
  }, 180_000);
});
