import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startIndexer, startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { waitFor, type RunningProcess } from "../support/process.js";

const HUSD = 10n ** 18n;

describe("HUSD deposits end to end: anvil → Ponder → workers → ledger", () => {
  let db: TestDatabase;
  let chain: TestChain;
  let indexer: RunningProcess;
  let stack: ReturnType<typeof depositStack>;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 12 });
    chain = await startTestChain({ blockTime: 1 });
    indexer = await startIndexer(chain, db.appUrl);
    stack = depositStack(db, chain);
    await stack.startWorkers();
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
    await indexer?.stop();
    await chain?.stop();
    await db?.drop();
  });

  it("a transfer to an org's deposit address is seen, confirmed and credited with no call from the org", async () => {
    const org = await stack.orgWithAddress();
    const { hash } = await stack.sendHusd(org.address, 25n * HUSD);
    const states = new Set<string>();
    await waitFor(
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

  it("the same log delivered twice (indexer and verify-and-record) is one deposit and one credit", async () => {
    const org = await stack.orgWithAddress("Twice Co");
    const { hash } = await stack.sendHusd(org.address, 3n * HUSD);
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } });
    expect([200, 201]).toContain(res.status);
    await waitFor(async () => (await stack.balanceNano(org.orgKey)) === 3_000_000_000n, {
      timeoutMs: 30_000,
      what: "credited",
    });
    await new Promise((r) => setTimeout(r, 1500)); // give the scan time to see it again
    const rows = await db.sql`select count(*)::int as n from husd_deposits where tx_hash = ${hash}`;
    expect(rows[0]!.n).toBe(1);
    expect(await stack.balanceNano(org.orgKey)).toBe(3_000_000_000n);
  });
});
