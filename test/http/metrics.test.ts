import { describe, expect } from "vitest";
import type { Sql } from "../../src/db/client.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { createTestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { dbTest as it } from "../support/fixtures.js";

/** /metrics aggregates whole tables at most once per snapshot period, and can require a token. */
describe("/metrics: snapshot and token", () => {
  /** The real database, recording the text of every statement sent through it. */
  function recording(db: TestDatabase) {
    const statements: string[] = [];
    const sql = ((...args: unknown[]) => {
      const strings = args[0];
      if (Array.isArray(strings)) statements.push(strings.join("?"));
      return (db.sql as unknown as (...a: unknown[]) => unknown)(...args);
    }) as unknown as Sql;
    return { sql: Object.assign(sql, { unsafe: db.sql.unsafe.bind(db.sql) }) as Sql, statements };
  }
  const whole = (statements: string[]) =>
    statements.filter((s) => /from (holds|ledger_transactions|husd_deposits)\b/.test(s) && !/limit 1/.test(s));

  it("ten scrapes within the snapshot period read each whole-table aggregate once", async ({ db }) => {
    const db2 = recording(db);
    const t = createTestApp({ sql: db.sql, extra: { metrics: createMetrics({ sql: db2.sql, snapshotMs: 60_000 }) } });
    for (let i = 0; i < 10; i++) expect((await t.call("GET", "/metrics")).status).toBe(200);
    expect(whole(db2.statements)).toHaveLength(3); // holds, postings, deposits
    // Without a snapshot period, every scrape reads them.
    const db3 = recording(db);
    const fresh = createTestApp({ sql: db.sql, extra: { metrics: createMetrics({ sql: db3.sql }) } });
    for (let i = 0; i < 3; i++) await fresh.call("GET", "/metrics");
    expect(whole(db3.statements)).toHaveLength(9);
  });

  it("with METRICS_TOKEN set, a scrape needs it", async ({ db }) => {
    const token = "metrics-token-0123456789";
    const t = createTestApp({
      sql: db.sql,
      config: { METRICS_TOKEN: token },
      extra: { metrics: createMetrics({ sql: db.sql }) },
    });
    const none = await t.call("GET", "/metrics");
    expect(none.status).toBe(401);
    expect(none.json.error).toMatchObject({ code: "missing_api_key", request_id: expect.any(String) });
    const wrong = await t.call("GET", "/metrics", { headers: { authorization: "Bearer metrics-token-nope-0123" } });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error.code).toBe("invalid_api_key");
    const right = await t.call("GET", "/metrics", { headers: { authorization: `Bearer ${token}` } });
    expect(right.status).toBe(200);
    expect(right.text).toContain("hanzo_holds_live");
  });
});
