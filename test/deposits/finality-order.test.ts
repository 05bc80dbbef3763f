import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient, type ChainClient } from "../../src/chain/client.js";
import { startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { chainReorg } from "../support/reorg.js";
import { startRpcProxy, type RpcProxy } from "../support/rpc-proxy.js";
import { depositContext } from "../support/context.js";

const HUSD = 10n ** 18n;

/**
 * A deposit's block, canonical but not yet final, is replaced and its height finalized while the
 * verifier is between two of its reads. Whichever two reads the replacement falls between, the
 * deposit must not be credited: finality is read first, and the block hash compared after it.
 */
describe("finality is read before the block hash is compared", () => {
  let db: TestDatabase;
  let chain: TestChain;
  let stack: ReturnType<typeof depositStack>;
  let reorg: ReturnType<typeof chainReorg>;
  let proxy: RpcProxy;
  let client: ChainClient;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 6 });
    chain = await startTestChain();
    stack = depositStack(db, chain);
    reorg = chainReorg(chain);
    proxy = await startRpcProxy(chain.rpcUrl);
    client = createChainClient({ RPC_URL: proxy.url, CHAIN_ID: chain.chainId });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await proxy?.close();
    await chain?.stop();
    await db?.drop();
  });

  /** A deposit one block deep (not final: 3 confirmations and the finalized tag are needed); returns its id and block. */
  async function pendingDeposit(n: number): Promise<{ id: string; block: bigint }> {
    const org = await stack.orgWithAddress(`Window ${n}`);
    const { hash, blockNumber } = await stack.sendHusd(org.address, BigInt(n + 1) * HUSD);
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", {
      key: org.orgKey,
      body: { tx_hash: hash as Hex },
    });
    await chain.mine(1);
    return { id: res.json.deposits[0].id as string, block: blockNumber };
  }

  it("the deposit's block replaced (and its height made final) before any one of the verifier's reads: never credited", async () => {
    // How many reads one check makes when nothing happens.
    const snap = await chain.clients.test.snapshot();
    const probe = await pendingDeposit(0);
    proxy.reset();
    expect((await verifyDeposit(depositContext(db.sql, client, stack.app.config), { depositId: probe.id })).state).toBe(
      "confirming",
    );
    const reads = proxy.served().length;
    expect(reads).toBeGreaterThanOrEqual(3);
    await chain.clients.test.revert({ id: snap });

    for (let k = 0; k <= reads; k++) {
      const s = await chain.clients.test.snapshot();
      const { id, block } = await pendingDeposit(k + 1);
      proxy.reset();
      proxy.onRequest(async ({ index }) => {
        if (index !== k) return;
        await reorg.replaceFrom(block); // the deposit's block and the one after it, now empty
        await chain.mine(5); // its height is now final, holding another block
      });
      try {
        // A failed check (the job is retried) is no credit either.
        const outcome = await verifyDeposit(depositContext(db.sql, client, stack.app.config), { depositId: id }).catch(
          (err: Error) => ({ state: `failed: ${err.name}` }),
        );
        expect(outcome.state, `replaced before read ${k} of ${proxy.served().join(", ")}`).not.toBe("credited");
        const [credits] =
          await db.sql`select count(*)::int as n from ledger_transactions where metadata->>'deposit_id' = ${id}`;
        expect(credits!.n).toBe(0);
      } finally {
        proxy.onRequest(null);
        await chain.clients.test.revert({ id: s });
      }
    }
  });
});
