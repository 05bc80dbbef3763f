import { describe, expect } from "vitest";
import { createMetrics } from "../../src/observability/metrics.js";
import { createTestApp, type TestApp } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

/** `ops`: an app with the metrics registry, on the file's database, to scrape /metrics from. */
const it = chainTest.extend<{ ops: TestApp }>({
  ops: [
    async ({ db }, use) =>
      use(createTestApp({ sql: db.appSql, extra: { metrics: createMetrics({ sql: db.appSql }) } })),
    { scope: "file" },
  ],
});

describe("/metrics for HUSD deposits: counts by state and the oldest one still undecided", () => {
  const scrape = async (ops: TestApp) => {
    const res = await ops.call("GET", "/metrics");
    expect(res.status).toBe(200);
    const value = (series: string) => {
      const line = res.text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    return value;
  };

  it("reports every state (0 when empty) and the age of the oldest seen or confirming deposit", async ({
    db,
    stack,
    ops,
  }) => {
    let metric = await scrape(ops);
    expect(metric("hanzo_deposit_oldest_pending_age_seconds")).toBe(0);
    expect(metric('hanzo_deposits{state="seen"}')).toBe(0);
    expect(metric('hanzo_deposits{state="reversed"}')).toBe(0);

    const org = await stack.orgWithAddress("Watched Co");
    const ids: string[] = [];
    for (const amount of [1n, 2n, 3n]) {
      const { hash } = await stack.sendHusd(org.address, amount * HUSD);
      ids.push(
        (await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } })).json
          .deposits[0].id,
      );
    }
    // One waiting for an hour, one confirming for ten minutes, one rejected long ago (not pending).
    await db.sql`update husd_deposits set seen_at = now() - interval '1 hour' where id = ${ids[0]!}`;
    await db.sql`update husd_deposits set state = 'confirming', seen_at = now() - interval '10 minutes' where id = ${ids[1]!}`;
    await db.sql`update husd_deposits set state = 'rejected', reason = 'test', seen_at = now() - interval '2 days' where id = ${ids[2]!}`;

    metric = await scrape(ops);
    expect(metric('hanzo_deposits{state="seen"}')).toBe(1);
    expect(metric('hanzo_deposits{state="confirming"}')).toBe(1);
    expect(metric('hanzo_deposits{state="rejected"}')).toBe(1);
    const age = metric("hanzo_deposit_oldest_pending_age_seconds")!;
    expect(age).toBeGreaterThanOrEqual(3600);
    expect(age).toBeLessThan(3600 + 120);

    // Decided: nothing pending any more, the age drops back to 0.
    await db.sql`update husd_deposits set state = 'orphaned' where id = any(${ids.slice(0, 2)})`;
    metric = await scrape(ops);
    expect(metric("hanzo_deposit_oldest_pending_age_seconds")).toBe(0);
    expect(metric('hanzo_deposits{state="orphaned"}')).toBe(2);
    expect(metric('hanzo_deposits{state="seen"}')).toBe(0);
  });
});
