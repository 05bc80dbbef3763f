import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";
import { holdsIndexReads, vacuumedAfterClosedHolds } from "../support/holds-plans.js";

// A file of its own: the plan depends on the statistics of holds, which another test's holds would
// change. A batch that authorizes for an organization first expires that organization's holds past
// their expiry (phase 2 of metering_batch). Under a plan made right after a vacuum, when the partial
// indexes over active holds are empty, that probe read holds_active_expiry (every organization's due
// holds) and filtered on org_id: after a gateway lost its holds, each batch read all of them once per
// organization it authorized for, and the sweeper once per organization it swept, holding their
// locks, until they were swept (migration 0044).
describe("a metering batch's sweep of an organization's due holds", () => {
  it("reads that organization's holds only, not every organization's due ones", async ({ app, db }) => {
    const a = await app.createOrg();
    const b = await app.createOrg();
    await app.grant(a.id, "1000");
    await app.grant(b.id, "1000");
    const now = app.clock();
    await vacuumedAfterClosedHolds(db.sql, a.id, now);
    const estimate = { input_tokens: 10n, output_tokens: 10n };
    const authorize = (m: Metering, orgId: string, at: Date, ttlSeconds: number) =>
      m.authorize({ orgId, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds }, at);
    const session = await db.sql.reserve();
    try {
      const metering = new Metering(session as unknown as Sql, { lanes: 1 });
      await metering.ready();
      // The session's first batch plans the sweep, with no hold active.
      await authorize(metering, a.id, now, 3600);
      // Then a gateway loses 2,000 of B's holds (a minute's TTL, never settled).
      for (let i = 0; i < 2000; i += 500)
        await Promise.all(Array.from({ length: 500 }, () => authorize(app.metering, b.id, now, 60)));
      // Ten minutes later, before any sweep, A authorizes on the session.
      const later = new Date(now.getTime() + 10 * 60_000);
      const { value: hold, read } = await holdsIndexReads(session as unknown as Sql, () =>
        authorize(metering, a.id, later, 3600),
      );
      expect(hold.status).toBe("active");
      // A's own probe finds none due (its one earlier hold is not); B's 2,000 due holds are not read.
      expect(read.length).toBeGreaterThan(0);
      expect(
        read.reduce((n, r) => n + r.tuples, 0),
        JSON.stringify(read),
      ).toBeLessThan(20);
      // And they are still B's to expire: A's batch locked A alone.
      const [still] = await db.sql<{ active: number }[]>`
        select count(*)::int as active from holds where org_id = ${b.id} and status = 'active'`;
      expect(still?.active).toBe(2000);
    } finally {
      session.release();
    }
  });
});
