import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";

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
    await db.sql`
      insert into holds (id, org_id, amount, status, product, model, estimate, catalog_version, expires_at, created_at, closed_at)
      select 'hold_past_' || n, ${a.id}, 0, 'active', 'llm', 'zen-pro', '{}', 'v', ${now}, ${now}, null
      from generate_series(1, 100000) n`;
    await db.sql`update holds set status = 'expired', closed_at = ${now} where id like 'hold_past_%'`;
    await db.sql`vacuum analyze holds`;
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
      const tuples = () => session<{ index: string; tuples: number }[]>`
        select c.relname as index, pg_stat_get_xact_tuples_returned(c.oid)::int as tuples
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = 'holds'::regclass order by 1`;
      await session`begin`;
      const before = await tuples();
      const hold = await authorize(metering, a.id, later, 3600);
      const after = await tuples();
      await session`commit`;
      expect(hold.status).toBe("active");
      const read = after.map((x) => ({
        index: x.index,
        tuples: x.tuples - (before.find((y) => y.index === x.index)?.tuples ?? 0),
      }));
      // A's own probe finds its one earlier hold, not yet due; B's 2,000 due holds are not read.
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
