import { afterEach, beforeEach, describe, expect } from "vitest";
import { type ChainContext, chainTest as it } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

describe("HUSD deposits end to end: anvil → Ponder → workers → ledger", () => {
  it.scoped({ dbOptions: { max: 12 }, chainOptions: { blockTime: 1 } });
  // Ponder is up before the workers start (they read its views); both start before the first test.
  beforeEach<ChainContext>(async ({ indexer, stack }) => {
    await indexer.waitFor(async () => (await fetch(`http://127.0.0.1:${indexer.port}/ready`)).ok, {
      what: "ponder ready",
    });
    await stack.startWorkers();
  }, 150_000);
  afterEach<ChainContext>(({ stack }) => stack.stopWorkers());

  it("a transfer to an org's deposit address is seen, confirmed and credited with no call from the org", async ({
    stack,
    indexer,
  }) => {
    const org = await stack.orgWithAddress();
    const { hash } = await stack.sendHusd(org.address, 25n * HUSD);
    const states = new Set<string>();
    await indexer.waitFor(
      async () => {
        const d = (await stack.deposits(org.orgKey)).find((x) => x.tx_hash === hash);
        if (d) states.add(d.state);
        return d?.state === "credited";
      },
      { timeoutMs: 30_000, intervalMs: 50, what: "credited through the indexer" },
    );
    expect([...states].some((s) => s === "seen" || s === "confirming")).toBe(true);
    expect(await stack.balanceNano(org.orgKey)).toBe(25_000_000_000n);
  });

  it("the same log delivered twice (indexer and verify-and-record) is one deposit and one credit", async ({
    db,
    stack,
    indexer,
  }) => {
    const org = await stack.orgWithAddress("Twice Co");
    const { hash } = await stack.sendHusd(org.address, 3n * HUSD);
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } });
    expect([200, 201]).toContain(res.status);
    await indexer.waitFor(async () => (await stack.balanceNano(org.orgKey)) === 3_000_000_000n, {
      timeoutMs: 30_000,
      what: "credited",
    });
    await new Promise((r) => setTimeout(r, 1500)); // give the scan time to see it again
    const rows = await db.sql`select count(*)::int as n from husd_deposits where tx_hash = ${hash}`;
    expect(rows[0]!.n).toBe(1);
    expect(await stack.balanceNano(org.orgKey)).toBe(3_000_000_000n);
  });
});
