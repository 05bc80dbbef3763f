import { performance } from "node:perf_hooks";
import { beforeAll, describe, expect } from "vitest";
import { Catalog, CATALOG_NOTICE_MS, readCatalogFile, type CatalogVersionFile } from "../../src/billing/catalog.js";
import { loadCatalog } from "../../src/billing/load-catalog.js";
import { createTestApp, type TestApp } from "../support/app.js";
import { dbTest as it } from "../support/fixtures.js";
import { waitFor } from "../support/process.js";
import { testContext } from "../support/context.js";

/**
 * How a process learns of catalog versions loaded after it read the catalog: the rule that
 * keeps pricing exact without any message (a version loaded with notice), and the messages that
 * make it prompt (NOTIFY at the load's commit, a read when the LISTEN connection comes back).
 * Two API processes together: test/e2e/replica-propagation.test.ts.
 */
describe("catalog versions loaded after a process read the catalog", () => {
  let v1: CatalogVersionFile;
  beforeAll(async () => {
    v1 = (await readCatalogFile()).versions[0]!;
  });

  let versions = 0;
  function version(effectiveAt: Date, requestRate: string): CatalogVersionFile {
    const v = structuredClone(v1);
    v.version = `v-${++versions}`;
    v.effective_at = effectiveAt.toISOString();
    v.products.api!.rates = { requests: requestRate };
    return v;
  }

  let events = 0;
  async function priceNow(t: TestApp, org: { id: string; gatewayKey: string }, at: Date) {
    const event = {
      idempotency_key: `e-${++events}`,
      org_id: org.id,
      timestamp: at.toISOString(),
      product: "api",
      quantities: { requests: 1 },
    };
    const res = await t.call("POST", "/v1/billing/usage", { key: org.gatewayKey, body: { events: [event] } });
    return [res.json.results[0].catalog_version, res.json.results[0].cost_nano_usd];
  }

  it("a process that hears of nothing still prices events from a noticed version's effective time with it", async ({
    db,
  }) => {
    const t = createTestApp({ sql: db.appSql }); // no watch: no NOTIFY, no periodic check
    const org = await t.createOrg();
    await t.grant(org.id, "1");
    expect(await priceNow(t, org, new Date())).toEqual(["2026-01-01", "100000"]); // its catalog is read now

    const v = version(new Date(Date.now() + CATALOG_NOTICE_MS + 10_000), "0.0002");
    await loadCatalog(testContext(db.sql), { file: { versions: [v] }, minNoticeMs: CATALOG_NOTICE_MS });

    const effectiveAt = new Date(v.effective_at);
    expect(await priceNow(t, org, new Date(effectiveAt.getTime() - 1))).toEqual(["2026-01-01", "100000"]);
    expect(await priceNow(t, org, effectiveAt)).toEqual([v.version, "200000"]);
  });

  it("refuses a new version at shorter notice when asked to, and announces nothing for it", async ({ db }) => {
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const heard: string[] = [];
    const listener = await db.sql.listen("catalog_versions", (v) => heard.push(v));
    try {
      const soon = version(new Date(Date.now() + 5_000), "0.0004");
      await expect(
        loadCatalog(testContext(db.sql), { file: { versions: [soon] }, minNoticeMs: CATALOG_NOTICE_MS }),
      ).rejects.toThrow(/less than 60 s after now/);
      const past = version(new Date(Date.now() - 3_600_000), "0.0004");
      await expect(
        loadCatalog(testContext(db.sql), { file: { versions: [past] }, minNoticeMs: CATALOG_NOTICE_MS }),
      ).rejects.toThrow(/less than 60 s after now/);
      expect(
        await db.sql`select 1 from catalog_versions where version in (${soon.version}, ${past.version})`,
      ).toHaveLength(0);
      // A version loaded after them is heard; they never were.
      const later = version(new Date(Date.now() + 2 * CATALOG_NOTICE_MS), "0.0004");
      await loadCatalog(testContext(db.sql), { file: { versions: [later] }, minNoticeMs: CATALOG_NOTICE_MS });
      await waitFor(() => heard.includes(later.version), {
        timeoutMs: 5_000,
        what: "the notice of the loaded version",
      });
      expect(heard).toEqual([later.version]);
    } finally {
      await listener.unlisten();
    }
  });

  it("NOTIFY alone brings a version loaded at short notice within a second", async ({ db }) => {
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const stop = await catalog.watch({ everyMs: 3_600_000 }); // the periodic check out of the way
    try {
      const v = version(new Date(Date.now() + 1_000), "0.0005");
      await loadCatalog(testContext(db.sql), { file: { versions: [v] } });
      const loadedAt = performance.now();
      await waitFor(() => catalog.allVersions().some((x) => x.version === v.version), {
        intervalMs: 5,
        timeoutMs: 5_000,
        what: "the version in memory",
      });
      expect(performance.now() - loadedAt).toBeLessThan(1_000);
      expect(catalog.price(new Date(v.effective_at), "api", undefined, { requests: 1n })).toEqual({
        version: v.version,
        cost: 500_000n,
      });
    } finally {
      await stop();
    }
  });

  it("a version loaded while the LISTEN connection is lost is read when it reconnects", async ({ db }) => {
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const stop = await catalog.watch({ everyMs: 3_600_000 });
    try {
      const listeners = () => db.sql<{ pid: number }[]>`
        select pid from pg_stat_activity where datname = current_database() and query like 'listen %catalog_versions%'`;
      const [lost] = await listeners();
      expect(lost).toBeDefined();
      await db.sql`select pg_terminate_backend(${lost!.pid})`;
      const v = version(new Date(Date.now() - 60_000), "0.0006"); // a backfill: the check alone could not bring it
      await loadCatalog(testContext(db.sql), { file: { versions: [v] } });
      await waitFor(() => catalog.allVersions().some((x) => x.version === v.version), {
        timeoutMs: 5_000,
        what: "the version in memory",
      });
      expect((await listeners()).map((l) => l.pid)).not.toContain(lost!.pid); // it did reconnect
    } finally {
      await stop();
    }
  });
});
