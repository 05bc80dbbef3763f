import { afterEach, beforeEach, describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { type ChainContext, chainTest as it } from "../support/chain-fixtures.js";
import { waitFor } from "../support/process.js";
import { chainReorg } from "../support/reorg.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

/**
 * The whole system on its own (anvil → Ponder → scan and check workers → ledger), through a real
 * A → B → A reorg before finality: the deposit's block A is replaced by an empty block B at the
 * same height, then A (the very same block, same hash) is canonical again and becomes final.
 */
describe("A→B→A end to end", () => {
  it.scoped({ dbOptions: { max: 12 } });
  beforeEach<ChainContext>(async ({ indexer, stack }) => {
    await indexer.waitFor(async () => (await fetch(`http://127.0.0.1:${indexer.port}/ready`)).ok, {
      what: "ponder ready",
    });
    await stack.startWorkers();
  }, 180_000);
  afterEach<ChainContext>(({ stack }) => stack.stopWorkers());

  it("a transfer that is final in its original block after a brief fork is credited by the workers (4 HUSD)", {
    timeout: 120_000,
  }, async ({ db, chain, stack, indexer }) => {
    const t = chain.clients.test;
    const org = await stack.orgWithAddress("E2E FlipBack");
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, 4n * HUSD);
    const s0 = await t.snapshot();
    const wallet = chain.clients.wallet(DevRoles.customer);
    const hash = await wallet.writeContract({
      address: chain.husd,
      abi: husdAbi,
      functionName: "transfer",
      args: [org.address, 4n * HUSD],
    });
    const { blockNumber } = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    const a = await t.getBlock({ blockNumber });
    const raw = await chainReorg(chain).raw(hash);
    const state = async () =>
      (await db.sql<{ state: string }[]>`select state from husd_deposits where tx_hash = ${hash}`)[0]?.state;

    // Ponder indexes it and the workers pick it up (not final: one block deep).
    await indexer.waitFor(async () => (await state()) === "confirming", { timeoutMs: 30_000, what: "confirming" });

    // Fork B: the same height, an empty block.
    await t.revert({ id: s0 });
    const s1 = await t.snapshot();
    await t.mine({ blocks: 1 });
    await indexer.waitFor(async () => (await state()) === "orphaned", { timeoutMs: 30_000, what: "orphaned on B" });

    // Back to A: the same block (same hash), then built on until final.
    await t.revert({ id: s1 });
    await t.setNextBlockTimestamp({ timestamp: a.timestamp });
    await t.setNextBlockBaseFeePerGas({ baseFeePerGas: a.baseFeePerGas! });
    await t.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never });
    await chainReorg(chain).blockOf(hash);
    expect((await t.getBlock({ blockNumber })).hash).toBe(a.hash);
    for (let i = 0; i < 6; i++) {
      await t.mine({ blocks: 1 });
      await new Promise((r) => setTimeout(r, 300));
    }
    // Ponder has the transfer again, in block A.
    await indexer.waitFor(
      async () =>
        (
          await db.sql`select count(*)::int as n from husd_indexer.husd_transfer where transaction_hash = ${hash} and block_hash = ${a.hash}`
        )[0]!.n === 1,
      { timeoutMs: 30_000, what: "indexed again in A" },
    );

    const credited = await waitFor(async () => (await stack.balanceNano(org.orgKey)) === 4n * USD, {
      timeoutMs: 20_000,
      what: "credited",
    }).then(
      () => true,
      () => false,
    );
    expect({ credited, state: await state(), balance: await stack.balanceNano(org.orgKey) }).toEqual({
      credited: true,
      state: "credited",
      balance: 4n * USD,
    });
  });
});
