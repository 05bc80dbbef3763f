import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";

// usage_events has a partition per month (migration 0035), and a year adds twelve. A plan that
// reads the parent by a column known only row by row locks and opens every partition and index
// at its start, so the duplicate-key lookup of each metering batch used to cost more every
// month (on 2026-12-03, 18 partitions and their 54 indexes, most in the shared lock table, not
// the backend's 16 fast-path slots). It now reads usage_events only for keys already recorded.
describe("a metering batch and usage_events' monthly partitions", () => {
  it("locks only the month it writes when its keys are new, and still finds a retried key", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const now = app.clock();
    const estimate = { input_tokens: 1000n, output_tokens: 500n };
    const authorize = (m: Metering) =>
      m.authorize(
        { orgId: org.id, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds: 300 },
        now,
      );
    const hold = await authorize(app.metering);
    const event = (key: string, holdId?: string) => ({
      orgId: org.id,
      idempotencyKey: key,
      occurredAt: now,
      product: "llm",
      model: "zen-pro",
      quantities: { input_tokens: 900n, output_tokens: 450n },
      holdId,
    });

    // One batch as the API sends it under load: an authorization and a new event settling a hold,
    // in a transaction of its own, so its locks can be read before it ends.
    const { usage, locked } = await db.sql.begin(async (tx) => {
      const metering = new Metering(tx as unknown as Sql, { lanes: 1 });
      await metering.ready();
      const [, [usage]] = await Promise.all([
        authorize(metering),
        metering.recordUsageMany([event("new-key", hold.id)], now),
      ]);
      const locked = await tx<{ name: string }[]>`
        select c.relname as name from pg_locks l join pg_class c on c.oid = l.relation
        where l.pid = pg_backend_pid() and c.relkind = 'r' and c.relname like 'usage_events%'
        order by 1`;
      return { usage, locked };
    });
    expect(usage).toMatchObject({ replayed: false, holdOutcome: "settled" });
    // The event's month (UTC), which its insert routes to.
    const month = `${now.getUTCFullYear()}_${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
    expect(locked.map((r) => r.name)).toEqual([`usage_events_p${month}`]);

    // The key is now recorded (the transaction committed): a retry answers with the first event.
    const [first] = await app.metering.recordUsageMany([event("new-key", hold.id)], now);
    expect(first).toMatchObject({ replayed: true, holdId: hold.id, usageId: (usage as { usageId: string }).usageId });
  });
});
