import type { Address, Hex } from "viem";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { describe, expect } from "vitest";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";
import { scanIndexedTransfers } from "../../src/billing/deposits/scan.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient } from "../../src/chain/client.js";
import type { TestApp } from "../support/app.js";
import { type ChainContext, chainTest } from "../support/chain-fixtures.js";
import { depositContext } from "../support/context.js";
import { expectDepositInvariants } from "../support/deposit-invariants.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { startLyingNode } from "../support/lying-node.js";
import { chainReorg } from "../support/reorg.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

type Steps = {
  reorg: ReturnType<typeof chainReorg>;
  deps(): DepositContext;
  topup(orgKey: string, hash: Hex): ReturnType<TestApp["call"]>;
  workersRun(deps?: DepositContext): Promise<void>;
  stateOf(id: string): Promise<string | undefined>;
};

const it = chainTest.extend<{ steps: Steps }>({
  steps: [
    async ({ db, chain, stack }, use) => {
      const reorg = chainReorg(chain);
      const deps = () => depositContext(db.sql, stack.chainClient, stack.app.config);
      const topup = (orgKey: string, hash: Hex) =>
        stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } });
      /** What the workers do on their own: the scan, the audit, then a check of every undecided deposit. */
      async function workersRun(d: DepositContext = deps()) {
        await scanIndexedTransfers(d);
        await auditCreditedDeposits(d);
        const pending = await db.sql<
          { id: string }[]
        >`select id from husd_deposits where state in ('seen', 'confirming') order by seen_at`;
        for (const { id } of pending) await verifyDeposit(d, { depositId: id });
      }
      const stateOf = async (id: string) =>
        (await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`)[0]?.state;
      await use({ reorg, deps, topup, workersRun, stateOf });
    },
    { scope: "file" },
  ],
});

/**
 * A real A → B → A reorg on anvil: block A (with the deposit's transaction) at height N, then a
 * fork B without it, then A again, the very same block (same hash: same parent, timestamp, base
 * fee and transaction), which the chain then builds on.
 */
function flipFlop(chain: ChainContext["chain"]) {
  const t = chain.clients.test;
  let s0: Hex | undefined;
  let a: Awaited<ReturnType<typeof t.getBlock>> | undefined;
  let raw: Hex | undefined;
  return {
    /** Sends `amount` to `to` as one transaction in its own block A; the chain can come back to A later. */
    async sendInA(to: Address, amount: bigint) {
      await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, amount);
      s0 = await t.snapshot();
      const wallet = chain.clients.wallet(DevRoles.customer);
      const hash = await wallet.writeContract({
        address: chain.husd,
        abi: husdAbi,
        functionName: "transfer",
        args: [to, amount],
      });
      const { blockNumber } = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 50 });
      a = await t.getBlock({ blockNumber });
      raw = await chainReorg(chain).raw(hash);
      return { hash, blockNumber, blockHash: a.hash };
    },
    /** Fork B: replaces A and everything after it with `blocks` empty blocks. */
    async toB(blocks: number) {
      await t.revert({ id: s0! });
      s0 = await t.snapshot();
      await t.mine({ blocks });
    },
    /** Back to A: the same block A at the same height, then `after` more blocks on it. */
    async backToA(after: number) {
      await t.revert({ id: s0! });
      await t.setNextBlockTimestamp({ timestamp: a!.timestamp });
      await t.setNextBlockBaseFeePerGas({ baseFeePerGas: a!.baseFeePerGas! });
      await t.request({ method: "eth_sendRawTransaction" as never, params: [raw!] as never });
      await chainReorg(chain).blockOf((await t.getBlock({ blockNumber: a!.number! })).transactions[0] as Hex);
      if (after > 0) await t.mine({ blocks: after });
      return (await t.getBlock({ blockNumber: a!.number! })).hash;
    },
  };
}

/**
 * A reorg that flips back (A → B → A): the chain follows a fork without the deposit's
 * transaction for a while, then returns to the original block (same hash), where the transfer
 * becomes final. Such a transfer must be credited, once.
 */
describe("a reorg that flips back to the original block", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("A→B→A before finality: the deposit orphaned on fork B is credited once A is back and final (5 HUSD)", async ({
    chain,
    stack,
    db,
    steps: { topup, workersRun, stateOf },
  }) => {
    const flip = flipFlop(chain);
    const org = await stack.orgWithAddress("FlipBack Pending");
    const { hash, blockNumber, blockHash } = await flip.sendInA(org.address, 5n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;

    await flip.toB(1); // same height, another block, no transaction
    await workersRun();
    expect(await stateOf(id)).toBe("orphaned");

    expect(await flip.backToA(5)).toBe(blockHash); // A again, and final (3 confirmations, finalized 2 behind)
    expect((await chain.clients.test.getTransactionReceipt({ hash })).blockHash).toBe(blockHash);
    expect((await chain.clients.test.getBlock({ blockTag: "finalized" })).number! >= blockNumber).toBe(true);

    // Everything the system does on its own, and the org reporting the transaction again.
    await workersRun();
    await topup(org.orgKey, hash);
    await workersRun();
    await workersRun();

    expect({ state: await stateOf(id), balance: await stack.balanceNano(org.orgKey) }).toEqual({
      state: "credited",
      balance: 5n * USD,
    });
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("A→B→A after the credit: the deposit reversed on fork B is credited again once A is back (7 HUSD)", async ({
    chain,
    stack,
    db,
    steps: { reorg, topup, workersRun, stateOf },
  }) => {
    const flip = flipFlop(chain);
    const org = await stack.orgWithAddress("FlipBack Credited");
    const { hash, blockNumber, blockHash } = await flip.sendInA(org.address, 7n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await reorg.mineUntilFinal(blockNumber);
    await workersRun();
    expect(await stateOf(id)).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(7n * USD);

    await flip.toB(6); // a deep fork without the transaction
    await workersRun();
    expect(await stateOf(id)).toBe("reversed");
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);

    expect(await flip.backToA(8)).toBe(blockHash);
    expect((await chain.clients.test.getTransactionReceipt({ hash })).blockHash).toBe(blockHash);
    await workersRun();
    await topup(org.orgKey, hash);
    await workersRun();
    await workersRun();

    expect({ state: await stateOf(id), balance: await stack.balanceNano(org.orgKey) }).toEqual({
      state: "credited",
      balance: 7n * USD,
    });
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("a flaky node answering one eth_getLogs by block hash with [] (a load-balanced node that has not indexed the block's logs yet) must not lose a final deposit for good (3 HUSD)", async ({
    chain,
    stack,
    db,
    steps: { reorg, topup, workersRun, stateOf },
  }) => {
    let emptyLogs = 0;
    const node = await startLyingNode(chain.rpcUrl, (r) => {
      if (r.method === "eth_getLogs" && emptyLogs > 0) {
        emptyLogs--;
        return [];
      }
      return undefined;
    });
    try {
      const flaky = depositContext(
        db.sql,
        createChainClient({ RPC_URL: node.url, CHAIN_ID: chain.chainId }),
        stack.app.config,
      );
      const org = await stack.orgWithAddress("Flaky Logs");
      const { hash, blockNumber } = await stack.sendHusd(org.address, 3n * HUSD);
      const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;

      emptyLogs = 1;
      await verifyDeposit(flaky, { depositId: id });
      const afterFlake = await stateOf(id);

      // The node is healthy again; the block never changed, the transfer is final.
      await reorg.mineUntilFinal(blockNumber);
      await chain.mine(3);
      await workersRun();
      await topup(org.orgKey, hash);
      await workersRun();
      await workersRun();

      expect({ afterFlake, now: await stateOf(id), balance: await stack.balanceNano(org.orgKey) }).toEqual({
        afterFlake: expect.stringMatching(/^(seen|confirming)$/), // nothing taken away on logs alone
        now: "credited",
        balance: 3n * USD,
      });
      await expectDepositInvariants(db.sql);
      await expectLedgerConsistent(db.sql);
    } finally {
      await node.close();
    }
  });

  it("one node of a load-balanced pool on a minority fork answers one audit: a credited deposit the chain never dropped is credited in the end (6 HUSD)", async ({
    chain,
    stack,
    db,
    steps: { reorg, topup, workersRun, stateOf },
  }) => {
    let fork: { height: string; blockHash: string; txHash: string } | null = null;
    const node = await startLyingNode(chain.rpcUrl, (r) => {
      if (!fork) return undefined;
      const p = r.params ?? [];
      // The minority fork: another block at that height, the original not known, the transaction not mined.
      if (r.method === "eth_getBlockByNumber" && p[0] === fork.height) return "fork-block";
      if (r.method === "eth_getTransactionReceipt" && String(p[0]).toLowerCase() === fork.txHash) return null;
      if (r.method === "eth_getBlockByHash" && String(p[0]).toLowerCase() === fork.blockHash) return null;
      return undefined;
    });
    try {
      const pool = depositContext(
        db.sql,
        createChainClient({ RPC_URL: node.url, CHAIN_ID: chain.chainId }),
        stack.app.config,
      );
      const org = await stack.orgWithAddress("Minority Fork");
      const { hash, blockNumber } = await stack.sendHusd(org.address, 6n * HUSD);
      const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
      await reorg.mineUntilFinal(blockNumber);
      await workersRun();
      expect(await stack.balanceNano(org.orgKey)).toBe(6n * USD);
      const original = await chain.clients.test.getBlock({ blockNumber });

      fork = {
        height: `0x${blockNumber.toString(16)}`,
        blockHash: original.hash.toLowerCase(),
        txHash: hash.toLowerCase(),
      };
      await auditCreditedDeposits(pool); // one audit run answered by the forked node
      fork = null;
      const afterGlitch = await stateOf(id);

      // The chain never changed: the transfer is where it always was, final.
      expect((await chain.clients.test.getTransactionReceipt({ hash })).blockHash).toBe(original.hash);
      await chain.mine(3);
      await workersRun();
      await topup(org.orgKey, hash);
      await workersRun();
      await workersRun();

      expect({ afterGlitch, now: await stateOf(id), balance: await stack.balanceNano(org.orgKey) }).toEqual({
        afterGlitch: expect.any(String),
        now: "credited",
        balance: 6n * USD,
      });
      await expectDepositInvariants(db.sql);
      await expectLedgerConsistent(db.sql);
    } finally {
      await node.close();
    }
  });
});
