import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import { createSql, type Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";

// A metering batch's statements are probes that take microseconds, and metering_batch keeps them so
// whatever the statistics: a generic plan can be costed past jit_above_cost (the sweep of expired
// holds, where one organization holds most of them), and compiling it took 7-11 ms of every call;
// one made while a table was small scans it whole on every call after (ledger_transactions, which
// grows by a row a batch, was scanned to find the batch's own transaction). It runs everything with
// JIT and sequential scans off.
describe("the plans of a metering batch", () => {
  it("neither compile nor scan a table whole, with JIT on for every statement and every table nearly empty", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1000");
    // Each plan reported, with where it ran (a nested statement's notice names its PL/pgSQL function).
    const plans: { plan: string; where: string }[] = [];
    const sql = createSql(db.url, {
      max: 1,
      onNotice: (n) => plans.push({ plan: String(n.message), where: String(n.where ?? "") }),
    });
    try {
      await sql.begin(async (tx) => {
        // Every statement, nested ones too, reported to this session with its plan; JIT for all.
        await tx.unsafe(`load 'auto_explain'`);
        await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
        await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
        await tx.unsafe(`set local auto_explain.log_level = notice`);
        await tx.unsafe(`set local jit = on`);
        await tx.unsafe(`set local jit_above_cost = 0`);
        // Outside metering_batch, a statement is compiled: the check below can fail.
        const [plain] = await tx.unsafe(`explain (analyze, format json) select count(*) from generate_series(1, 10)`);
        expect(JSON.stringify(plain)).toContain('"JIT"');

        const metering = new Metering(tx as unknown as Sql, { lanes: 1 });
        await metering.ready();
        const now = app.clock();
        const hold = await metering.authorize(
          {
            orgId: org.id,
            product: "llm",
            model: "zen-pro",
            estimate: { input_tokens: 10n, output_tokens: 10n },
            idempotencyKey: undefined,
            ttlSeconds: 300,
          },
          now,
        );
        await metering.recordUsageMany(
          [
            {
              orgId: org.id,
              idempotencyKey: "settles",
              occurredAt: now,
              product: "llm",
              model: "zen-pro",
              quantities: { input_tokens: 5n, output_tokens: 5n },
              holdId: hold.id,
            },
          ],
          now,
        );
      });
    } finally {
      await sql.end();
    }
    // The statements metering_batch runs (the call itself is the caller's: one function scan, costed
    // far below jit_above_cost as deployed, compiled here only because of the test's setting).
    const inside = plans.filter((p) => p.where.includes("PL/pgSQL function metering_batch("));
    expect(inside.filter((p) => p.plan.includes("metering_lock_orgs")).length).toBe(2); // each reported
    expect(inside.length).toBeGreaterThan(20);
    expect(inside.filter((p) => p.plan.includes("JIT:")).map((p) => p.plan)).toEqual([]);
    // This file's tables hold a few rows, so the planner would scan several of them whole.
    expect(inside.filter((p) => p.plan.includes("Seq Scan")).map((p) => p.plan)).toEqual([]);
  });
});
