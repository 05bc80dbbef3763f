import { pino } from "pino";
import type { Hex } from "viem";
import { describe, expect } from "vitest";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createSql, type Sql } from "../../src/db/client.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { depositMovements, expectDepositInvariants } from "../support/deposit-invariants.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { chainReorg } from "../support/reorg.js";
import { depositContext } from "../support/context.js";
import type { TestApp } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

const silent = pino({ level: "silent" });

type Race = {
  reorg: ReturnType<typeof chainReorg>;
  /** Two connection pools of the API's role, one per worker process. */
  pools: Sql[];
  topup(orgKey: string, hash: Hex): ReturnType<TestApp["call"]>;
  depsOn(sql: Sql): DepositContext;
};

/** `race`: reorgs on the file's chain, two pools to race on, top-ups through the stack. */
const it = chainTest.extend<{ race: Race }>({
  race: [
    async ({ db, chain, stack }, use) => {
      const pools = [createSql(db.appUrl, { max: 6 }), createSql(db.appUrl, { max: 6 })];
      try {
        await use({
          reorg: chainReorg(chain),
          pools,
          topup: (orgKey, hash) =>
            stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } }),
          depsOn: (sql) => depositContext(sql, stack.chainClient, stack.app.config),
        });
      } finally {
        await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      }
    },
    { scope: "file" },
  ],
});

/**
 * Two worker processes (each its own connection pool) on the same deposit at the same moment:
 * the unique keys and the row lock in PostgreSQL decide, never which worker got the job.
 */
describe("deposit checks racing each other", () => {
  it.scoped({ dbOptions: { max: 4 } });

  it("two worker processes given the same deposit job at once credit it once", async ({
    db,
    stack,
    race: { reorg, pools, topup, depsOn },
  }) => {
    const org = await stack.orgWithAddress("Race Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 8n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await reorg.mineUntilFinal(blockNumber);
    // Two full worker sets on one queue, each with its own pool; the same deposit enqueued under
    // several job ids (as a sweep, the API and a retry would), so both take it at the same time.
    const prefix = stack.prefix;
    const started = await Promise.all(
      pools.map((sql) =>
        startWorkers({
          sql,
          connection: stack.redis,
          prefix,
          logger: silent,
          clock: () => new Date(),
          config: stack.app.config,
          chain: stack.chainClient,
          maintenanceEveryMs: 60_000,
        }),
      ),
    );
    try {
      await started[0]!.queues.deposits.addBulk(
        Array.from({ length: 16 }, (_, i) => ({
          name: "verify",
          data: { deposit_id: id },
          opts: { jobId: `race-${id}-${i}` },
        })),
      );
      // And the verb itself, called from both pools at once.
      const direct = await Promise.all(
        pools.flatMap((sql) => Array.from({ length: 4 }, () => verifyDeposit(depsOn(sql), { depositId: id }))),
      );
      expect(direct.every((o) => o.state === "credited")).toBe(true);
      await waitFor(
        async () => {
          const counts = await started[0]!.queues.deposits.getJobCounts("waiting", "active", "delayed");
          return (counts.waiting ?? 0) + (counts.active ?? 0) + (counts.delayed ?? 0) === 0;
        },
        { what: "all race jobs done" },
      );
    } finally {
      await Promise.all(started.map((w) => w.close()));
    }
    expect(await depositMovements(db.sql, id)).toEqual([["husd_deposit", 8n * USD]]);
    expect(await stack.balanceNano(org.orgKey)).toBe(8n * USD);

    // Reorged out: audits racing on both pools reverse it once. Mined again: racing verifiers
    // credit the second appearance once.
    const raw = await reorg.raw(hash);
    await reorg.replaceFrom(blockNumber);
    await Promise.all(pools.flatMap((sql) => [auditCreditedDeposits(depsOn(sql)), auditCreditedDeposits(depsOn(sql))]));
    expect(await depositMovements(db.sql, id)).toEqual([
      ["husd_deposit", 8n * USD],
      ["reversal", -8n * USD],
    ]);
    await reorg.resend(raw);
    await reorg.mineUntilFinal(await reorg.blockOf(hash));
    await topup(org.orgKey, hash);
    await Promise.all(
      pools.flatMap((sql) => Array.from({ length: 4 }, () => verifyDeposit(depsOn(sql), { depositId: id }))),
    );
    expect(await depositMovements(db.sql, id)).toEqual([
      ["husd_deposit", 8n * USD],
      ["reversal", -8n * USD],
      ["husd_deposit", 8n * USD],
    ]);
    expect(await stack.balanceNano(org.orgKey)).toBe(8n * USD);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("the database refuses a second standing credit even from code that skips the row lock", async ({
    db,
    stack,
    race: { reorg, topup, depsOn },
  }) => {
    const org = await stack.orgWithAddress("Guard Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 2n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await reorg.mineUntilFinal(blockNumber);
    expect((await verifyDeposit(depsOn(db.sql), { depositId: id })).state).toBe("credited");
    // A credited row may not count anything but exactly one standing credit.
    await expect(db.sql`update husd_deposits set credit_count = credit_count + 1 where id = ${id}`).rejects.toThrow(
      /check/,
    );
    await expect(db.sql`update husd_deposits set state = 'seen' where id = ${id}`).rejects.toThrow(/check/);
    // The same content cannot be a second deposit.
    await expect(db.sql`insert into husd_deposits (id, chain_id, tx_hash, log_index, block_number, block_hash, token_address, from_address, to_address, org_id, amount, amount_nano_usd, state, source, seen_at, updated_at, ordinal)
      select 'dep_copy', chain_id, tx_hash, log_index + 7, block_number, block_hash, token_address, from_address, to_address, org_id, amount, amount_nano_usd, 'seen', source, seen_at, updated_at, ordinal
      from husd_deposits where id = ${id}`).rejects.toThrow(/husd_deposits_identity/);
  });
});
