import { QueueEvents } from "bullmq";
import { beforeEach, describe, expect } from "vitest";
import { checkBackoffMs, claimDueDeposits } from "../../src/billing/deposits/schedule.js";
import { createChainClient } from "../../src/chain/client.js";
import { checkDeposit } from "../../src/workers/processors/deposit-check.js";
import { scanDeposits } from "../../src/workers/processors/deposit-scan.js";
import { bullPrefix, createQueues, QueueNames, type Queues } from "../../src/jobs/queues.js";
import { manualClock } from "../support/app.js";
import { depositStack } from "../support/deposit-stack.js";
import { waitFor } from "../support/process.js";
import { createTestRedis } from "../support/redis.js";
import { startRpcProxy, type RpcProxy } from "../support/rpc-proxy.js";
import { at as atTime } from "../../src/billing/context.js";
import { depositContext, testContext } from "../support/context.js";
import { type ChainContext, chainTest } from "../support/chain-fixtures.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";

const HUSD = 10n ** 18n;

type Schedule = {
  queues: Queues;
  /** The chain through a proxy that counts the calls it serves. */
  proxy: RpcProxy;
  pendingDeposits(n: number): Promise<void>;
  takeEnqueued(): Promise<string[]>;
  deps(): DepositContext & { queues: Queues };
};

const it = chainTest.extend<{ schedule: Schedule }>({
  schedule: [
    async ({ db, chain, stack }, use) => {
      const proxy = await startRpcProxy(chain.rpcUrl);
      const queues = createQueues(stack.redis, stack.prefix);
      /**
       * `n` undecided deposits written straight into the table, in blocks far beyond the chain's head:
       * they can never be final here, so they stay pending however often they are checked.
       */
      async function pendingDeposits(n: number): Promise<void> {
        await db.sql`insert into organizations (id, name) values ('org_sched', 'Schedule Co') on conflict do nothing`;
        await db.sql.unsafe(`
          insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address, to_address,
                                     org_id, amount, amount_nano_usd, state, source, seen_at, updated_at)
          select 'dep_sched' || lpad(i::text, 6, '0'), ${chain.chainId}, '0x' || md5('tx' || i) || md5('t2' || i), 0, 0, 1000000 + i,
                 '0x' || md5('b' || i) || md5('b2' || i), '${chain.husd.toLowerCase()}', '0x' || substr(md5('from' || i), 1, 40), '0x' || substr(md5('to'), 1, 40),
                 'org_sched', 1000000000000000000, 1000000000, case when i % 2 = 0 then 'seen' else 'confirming' end, 'indexer', now(), now()
          from generate_series(1, ${n}) i`);
      }

      /** What one scan enqueued: the deposit ids of the jobs waiting now, which are then removed (no worker runs). */
      async function takeEnqueued(): Promise<string[]> {
        const jobs = await queues.deposits.getJobs(["wait", "prioritized", "delayed"], 0, -1);
        await queues.deposits.drain(true);
        return jobs.map((j) => j.data.deposit_id);
      }

      const deps = () => ({ ...depositContext(db.sql, stack.chainClient, stack.app.config), queues });
      try {
        await use({ queues, proxy, pendingDeposits, takeEnqueued, deps });
      } finally {
        await stack.stopWorkers();
        await queues.close();
        await proxy.close();
      }
    },
    { scope: "file" },
  ],
});

/**
 * Undecided deposits are checked on a schedule (src/billing/deposits/schedule.ts): new ones at
 * once, then with a backoff doubling from 1 s to 60 s, and as soon as their block can be final;
 * at most DEPOSIT_CHECKS_PER_SECOND checks a second however many are pending.
 */
describe("deposit checks: backoff and a bounded rate", () => {
  it.scoped({ dbOptions: { max: 8 }, stackConfig: { DEPOSIT_CHECKS_PER_SECOND: "50" } });
  beforeEach<ChainContext & { schedule: Schedule }>(async ({ db, stack, schedule }) => {
    await stack.stopWorkers();
    await schedule.queues.deposits.obliterate({ force: true });
    await db.sql`delete from husd_deposits`;
  });

  it("10,000 pending deposits: each scan (1 s apart) enqueues 50 checks, new deposits first, none twice within its backoff", async ({
    db,
    schedule: { pendingDeposits, takeEnqueued, deps },
  }) => {
    await pendingDeposits(10_000);
    const clock = manualClock();
    const seen = new Set<string>();
    for (let tick = 0; tick < 60; tick++) {
      const result = await scanDeposits(atTime(deps(), clock()), { scanEveryMs: 1_000 });
      const ids = await takeEnqueued();
      expect(result.checks).toBe(50);
      expect(ids).toHaveLength(50);
      // Never-checked deposits come before any re-check: 60 scans, 3,000 different deposits.
      for (const id of ids) expect(seen.has(id), `${id} checked again at scan ${tick}`).toBe(false);
      for (const id of ids) seen.add(id);
      clock.advance(1_000);
    }
    expect(seen.size).toBe(3_000);
    const [row] = await db.sql<{ taken: number; untouched: number }[]>`
      select count(*) filter (where check_attempts = 1)::int as taken, count(*) filter (where check_attempts = 0 and next_check_at = '-infinity')::int as untouched from husd_deposits`;
    expect(row).toEqual({ taken: 3_000, untouched: 7_000 });
  }, 60_000);

  it("a deposit that stays pending is taken again only when its backoff has passed: 1 s, 2 s, 4 s … then every 60 s", async ({
    db,
    schedule: { pendingDeposits },
  }) => {
    await pendingDeposits(100);
    const start = manualClock()().getTime();
    const step = 500;
    const horizon = 250_000;
    const taken = new Map<string, number[]>();
    for (let t = 0; t <= horizon; t += step) {
      const ids = await claimDueDeposits(atTime(testContext(db.sql), new Date(start + t)), { limit: 50, edge: 0n });
      expect(ids.length).toBeLessThanOrEqual(50);
      for (const id of ids) taken.set(id, [...(taken.get(id) ?? []), t]);
    }
    expect(taken.size).toBe(100);
    for (const [id, times] of taken) {
      const gaps = times.slice(1).map((t, k) => t - times[k]!);
      // The k-th check puts the deposit off by checkBackoffMs(k); it is taken at the first step after that.
      gaps.forEach((gap, k) => {
        expect(gap, `${id}: gap ${k + 1} of ${gaps.join(", ")}`).toBeGreaterThanOrEqual(checkBackoffMs(k + 1));
        expect(gap, `${id}: gap ${k + 1} of ${gaps.join(", ")}`).toBeLessThan(checkBackoffMs(k + 1) + step);
      });
      expect(gaps.slice(0, 9)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    }
  });

  it("a deposit checked and not final is not checked again before its next_check_at, and is as soon as its block can be final", async ({
    db,
    chain,
    stack,
    schedule: { takeEnqueued, deps },
  }) => {
    const org = await stack.orgWithAddress("Backoff Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 5n * HUSD);
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } });
    const id = res.json.deposits[0].id as string;
    const clock = manualClock();
    const t0 = clock().getTime();
    const at = (ms: number) => new Date(t0 + ms);
    const scan = async (ms: number) => {
      await scanDeposits(atTime(deps(), at(ms)), { scanEveryMs: 1_000 });
      return takeEnqueued();
    };
    const check = async (ms: number) =>
      (
        await checkDeposit(atTime(depositContext(db.sql, stack.chainClient, stack.app.config), at(ms)), {
          deposit_id: id,
        })
      ).state;
    const schedule = async () =>
      (
        await db.sql<{ next_check_at: Date; check_attempts: number; next_check_block: bigint | null }[]>`
      select next_check_at, check_attempts, next_check_block from husd_deposits where id = ${id}`
      )[0]!;

    expect(await scan(0)).toEqual([id]); // new: at once
    expect(await check(0)).toBe("confirming");
    expect(await schedule()).toEqual({ next_check_at: at(1_000), check_attempts: 1, next_check_block: blockNumber });
    expect(await scan(500)).toEqual([]);
    expect(await scan(999)).toEqual([]);
    expect(await scan(1_000)).toEqual([id]); // its backoff passed
    expect(await check(1_000)).toBe("confirming");
    expect(await schedule()).toMatchObject({ next_check_at: at(3_000), check_attempts: 2 });
    expect(await scan(1_500)).toEqual([]);
    expect(await scan(2_900)).toEqual([]);

    // Its block becomes final by policy (3 deep, at or below `finalized`): taken before its backoff is up.
    await chain.mine(4);
    expect(await scan(2_950)).toEqual([id]);
    expect(await schedule()).toMatchObject({
      next_check_at: at(2_950 + 4_000),
      check_attempts: 3,
      next_check_block: null,
    });
    expect(await check(2_950)).toBe("credited");
    expect(await scan(60_000)).toEqual([]);
  });

  it("with 10,000 deposits pending, the workers check at most DEPOSIT_CHECKS_PER_SECOND a second and their RPC node sees a bounded rate of calls", async ({
    db,
    chain,
    schedule: { proxy, pendingDeposits },
  }) => {
    await pendingDeposits(10_000);
    const perSecond = 10;
    const bounded = depositStack(db, chain, { DEPOSIT_CHECKS_PER_SECOND: String(perSecond), RPC_URL: proxy.url });
    const eventsRedis = createTestRedis();
    const events = new QueueEvents(QueueNames.deposits, {
      connection: eventsRedis,
      prefix: bullPrefix(bounded.prefix),
    });
    const boundedQueues = createQueues(bounded.redis, bounded.prefix);
    try {
      await events.waitUntilReady();
      let checks = 0;
      events.on("completed", () => void checks++);
      events.on("failed", () => void checks++);
      await bounded.startWorkers({ chain: createChainClient({ RPC_URL: proxy.url, CHAIN_ID: chain.chainId }) });
      await waitFor(() => checks > 0, { what: "the first check" });
      proxy.reset();
      checks = 0;
      const started = performance.now();
      await new Promise((r) => setTimeout(r, 3_000)); // a window of wall time, measured below
      const calls = proxy.served().length;
      const checked = checks;
      const seconds = (performance.now() - started) / 1000;
      const waiting = await boundedQueues.deposits.getJobCountByTypes("wait", "prioritized", "delayed");
      const summary = `${checked} checks, ${calls} RPC calls in ${seconds.toFixed(1)} s; ${waiting} checks queued`;
      // One second's budget more, for a window that starts mid-second.
      expect(checked, summary).toBeLessThanOrEqual((seconds + 1) * perSecond);
      // Per second at most: 10 checks × 4 calls, and 5 scans (every 200 ms) and 5 audits, 2 calls each
      // (the chain's head and finalized block).
      expect(calls, summary).toBeLessThanOrEqual((seconds + 1) * (perSecond * 4 + 5 * 2 + 5 * 2));
      // Scans enqueue what the workers may check, not every pending deposit.
      expect(waiting, summary).toBeLessThanOrEqual(2 * perSecond);
    } finally {
      await events.close();
      eventsRedis.disconnect();
      await boundedQueues.close();
      await bounded.close();
    }
  });
});
