import { afterAll, describe, expect } from "vitest";
import { startBin, waitFor, type RunningProcess } from "../support/process.js";
import { chainTest as it } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

describe("a worker killed mid-flight", () => {
  // The API runs in process (`stack`); the workers below are real processes on the `redis` prefix.
  it.scoped({ dbOptions: { max: 8 }, redisLabel: "crash-worker" });
  const workers: RunningProcess[] = []; // stopped even when the test fails or times out, never left running
  afterAll(() => Promise.all(workers.map((w) => w.stop("SIGKILL"))));

  // Starts anvil and two worker processes: room for a loaded machine (each wait below has its own bound).
  it("kill -9 while deposits are being credited: after a restart every deposit is credited exactly once", {
    timeout: 120_000,
  }, async ({ db, chain, stack, redis }) => {
    const orgs = await Promise.all(Array.from({ length: 4 }, (_, i) => stack.orgWithAddress(`Crash ${i}`)));
    let expected = 0n;
    for (const [i, org] of orgs.entries()) {
      for (let j = 1; j <= 5; j++) {
        const amount = BigInt(i * 10 + j) * HUSD;
        const { hash } = await stack.sendHusd(org.address, amount);
        await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } });
        expected += amount / 10n ** 9n;
      }
    }
    await chain.mine(5); // all 20 final
    const env = {
      DATABASE_URL: db.appUrl,
      REDIS_PREFIX: redis.prefix,
      LOG_LEVEL: "warn",
      RPC_URL: chain.rpcUrl,
      CHAIN_ID: String(chain.chainId),
      HUSD_ADDRESS: chain.husd,
      DEPOSIT_FACTORY_ADDRESS: chain.factory,
      FINALITY_CONFIRMATIONS: "3",
      DEPOSIT_SCAN_INTERVAL_MS: "100",
    };
    const credited = async () =>
      (await db.sql`select count(*)::int as n from husd_deposits where state = 'credited'`)[0]!.n as number;
    const first = startBin("worker.ts", env);
    workers.push(first);
    await waitFor(async () => (await credited()) >= 1, { timeoutMs: 20_000, intervalMs: 5, what: "first credit" });
    first.child.kill("SIGKILL"); // mid-flight: jobs active, some committed, some not
    await first.exited;
    const afterKill = await credited();
    const second = startBin("worker.ts", env);
    workers.push(second);
    try {
      await waitFor(async () => (await credited()) === 20, {
        timeoutMs: 30_000,
        what: `all credited after restart (had ${afterKill})`,
      });
    } finally {
      await second.stop();
    }
    const [ledger] = await db.sql`select count(*)::int as n, sum(e.amount)::text as total from ledger_transactions t
      join ledger_entries e on e.transaction_id = t.id and e.account_id like 'org:%' where t.kind = 'husd_deposit'`;
    expect(ledger).toEqual({ n: 20, total: expected.toString() });
    let total = 0n;
    for (const org of orgs) total += await stack.balanceNano(org.orgKey);
    expect(total).toBe(expected);
  });
});
