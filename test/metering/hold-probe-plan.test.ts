import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";

// A file of its own: the plan depends on the statistics of holds, which another test's holds would
// change (holds-by-key.test.ts has the batch's UPDATEs of holds).
describe("a metering batch's probe of the holds its usage names", () => {
  // A plan is made on a session's first call after an analyze and kept. Made right after a vacuum,
  // the partial indexes over active holds are empty, and the probe of the holds a batch's usage
  // names (are they due to expire?) chose one of them, matching expires_at and filtering on id.
  // In bench:metering it was holds_active_org, whose second column expires_at is: every probe read
  // the whole index, 5 ms for a batch's three probes once 8 s of load had filled it
  // (bench/RESULTS-metering.md, 2026-12-04, ninth machine). Here, holds_active_expiry.
  it("probes a named hold by primary key under a plan made while no hold was active", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1000");
    const now = app.clock();
    await db.sql`
      insert into holds (id, org_id, amount, status, product, model, estimate, catalog_version, expires_at, created_at, closed_at)
      select 'hold_past_' || n, ${org.id}, 0, 'active', 'llm', 'zen-pro', '{}', 'v', ${now}, ${now}, null
      from generate_series(1, 100000) n`;
    await db.sql`update holds set status = 'expired', closed_at = ${now} where id like 'hold_past_%'`;
    await db.sql`vacuum analyze holds`;
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
      // Index blocks this session reads for the settle: counted within one transaction (the
      // session's counts not yet reported carry earlier statements too, hence the difference).
      const blocks = () => session<{ index: string; blocks: number }[]>`
        select c.relname as index, pg_stat_get_xact_blocks_fetched(c.oid)::int as blocks
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = 'holds'::regclass order by 1`;
      await session`begin`;
      const before = await blocks();
      const [result] = await metering.recordUsageMany([usage(toSettle.id, "settles")], now);
      const after = await blocks();
      await session`commit`;
      expect(result).toMatchObject({ holdOutcome: "settled" });
      const read = after.map((a) => ({
        index: a.index,
        blocks: a.blocks - (before.find((b) => b.index === a.index)?.blocks ?? 0),
      }));
      // The hold is reached by primary key, and its settled version enters no index over active
      // holds: those are not read at all. A probe through one matches expires_at alone and reads
      // what precedes now in it (holds_active_expiry: 4 blocks here) or all of it (holds_active_org,
      // the bench's plan).
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
