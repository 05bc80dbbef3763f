import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";
import { holdsIndexReads, vacuumedAfterClosedHolds } from "../support/holds-plans.js";

// A file of its own: the plan depends on the statistics of holds, which another test's holds would
// change (holds-by-key.test.ts has the batch's UPDATEs of holds).
describe("a metering batch's probe of the holds its usage names", () => {
  // A plan is made on a session's first call after an analyze and kept. Made right after a vacuum,
  // the partial indexes over active holds are empty, and the probe of the holds a batch's usage
  // names (are they due to expire?) chose one of them, matching expires_at and filtering on id.
  // It was holds_active_org, whose second column expires_at is: every probe read the whole index,
  // 5 ms for a batch's three probes once 8 s of bench:metering's load had filled it
  // (bench/RESULTS-metering.md, 2026-12-04, ninth machine).
  it("probes a named hold by primary key under a plan made while no hold was active", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1000");
    const now = app.clock();
    await vacuumedAfterClosedHolds(db.sql, org.id, now);
    const session = await db.sql.reserve();
    try {
      const metering = new Metering(session as unknown as Sql, { lanes: 1 });
      await metering.ready();
      const usage = (holdId: string, key: string) => ({
        orgId: org.id,
        idempotencyKey: key,
        occurredAt: now,
        product: "llm",
        model: "zen-pro",
        quantities: { input_tokens: 5n, output_tokens: 5n },
        holdId,
      });
      // The session's first batch naming a hold plans the probe, with no hold active.
      await metering.recordUsageMany([usage("hold_past_1", "first")], now);
      // Then 5,000 holds in flight (other sessions), and one to settle on this one.
      const estimate = { input_tokens: 10n, output_tokens: 10n };
      const authorize = () =>
        app.metering.authorize(
          { orgId: org.id, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds: 3600 },
          now,
        );
      for (let i = 0; i < 5000; i += 500) await Promise.all(Array.from({ length: 500 }, authorize));
      const toSettle = await authorize();
      const { value: outcomes, read } = await holdsIndexReads(session as unknown as Sql, () =>
        metering.recordUsageMany([usage(toSettle.id, "settles")], now),
      );
      expect(outcomes[0]).toMatchObject({ holdOutcome: "settled" });
      // The hold is reached by primary key, and its settled version enters no index over active
      // holds: those are not read at all. The old probe read all of holds_active_org here, 9 blocks
      // with 5,000 holds in flight (before migration 0044, holds_active_expiry up to now: 4).
      const partial = read.filter((r) => r.index === "holds_active_org" || r.index === "holds_active_expiry");
      expect(partial, JSON.stringify(read)).toHaveLength(2);
      expect(
        partial.reduce((n, r) => n + r.blocks, 0),
        JSON.stringify(read),
      ).toBe(0);
    } finally {
      session.release();
    }
  });
});
