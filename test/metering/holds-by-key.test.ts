import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";

// holds has two partial indexes over its active holds (holds_active_expiry, holds_active_org).
// Statistics taken while few holds were active make the planner cost a scan of either at about
// one row, so a generic plan could close holds by reading every active hold and filtering on id:
// a batch then read all holds in flight, thousands under a gateway's long calls. The batch's
// UPDATEs of holds must reach them by primary key whatever the statistics say.
describe("a metering batch and the holds in flight", () => {
  it("settles and expires holds by primary key, not by reading every active hold", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1000");
    const now = app.clock();
    const estimate = { input_tokens: 10n, output_tokens: 10n };
    const authorize = (m: Metering, at: Date, ttlSeconds: number) =>
      m.authorize(
        { orgId: org.id, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds },
        at,
      );
    const settle = (m: Metering, at: Date, holdId: string, key: string) =>
      m.recordUsageMany(
        [
          {
            orgId: org.id,
            idempotencyKey: key,
            occurredAt: at,
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 5n, output_tokens: 5n },
            holdId,
          },
        ],
        at,
      );

    // Statistics from a table of settled holds, none active (an hour's TTL, so that the index
    // entries their settling left are not due in the batch below: only a vacuum removes them).
    const past = await Promise.all(Array.from({ length: 200 }, () => authorize(app.metering, now, 3600)));
    await Promise.all(past.map((h, i) => settle(app.metering, now, h.id, `past-${i}`)));
    await db.sql`analyze holds`;
    // Then 2,000 holds in flight (an hour's TTL), one to settle, one that expires in a minute.
    const inFlight = 2000;
    for (let i = 0; i < inFlight; i += 500)
      await Promise.all(Array.from({ length: 500 }, () => authorize(app.metering, now, 3600)));
    const toSettle = await authorize(app.metering, now, 3600);
    const toExpire = await authorize(app.metering, now, 60);

    // Ten minutes later, one batch: an authorization (which expires the org's due holds) and an
    // event settling a hold, in a transaction of its own so its index reads can be counted.
    const later = new Date(now.getTime() + 10 * 60_000);
    const { usage, read } = await db.sql.begin(async (tx) => {
      const metering = new Metering(tx as unknown as Sql, { lanes: 1 });
      await metering.ready();
      const [, [usage]] = await Promise.all([
        authorize(metering, later, 300),
        settle(metering, later, toSettle.id, "settles"),
      ]);
      const read = await tx<{ index: string; tuples: number }[]>`
        select c.relname as index, pg_stat_get_xact_tuples_returned(c.oid)::int as tuples
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = 'holds'::regclass order by 1`;
      return { usage, read };
    });
    expect(usage).toMatchObject({ replayed: false, holdOutcome: "settled" });
    const [expired] = await db.sql<{ status: string }[]>`select status from holds where id = ${toExpire.id}`;
    expect(expired?.status).toBe("expired");
    // A handful of index entries per hold touched; reading the holds in flight would be thousands.
    const total = read.reduce((n, r) => n + r.tuples, 0);
    expect(read.length).toBeGreaterThan(0);
    expect(total, JSON.stringify(read)).toBeLessThan(100);
  });
});
