import type { Hex } from "viem";
import { describe, expect } from "vitest";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient, type ChainClient } from "../../src/chain/client.js";
import { chainReorg } from "../support/reorg.js";
import { startRpcProxy, type RpcProxy } from "../support/rpc-proxy.js";
import { depositContext } from "../support/context.js";
import { chainTest } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

type Window = {
  reorg: ReturnType<typeof chainReorg>;
  /** The verifier's RPC node: the chain through a proxy that counts its reads and can act between them. */
  proxy: RpcProxy;
  client: ChainClient;
  pendingDeposit(n: number): Promise<{ id: string; block: bigint }>;
};

const it = chainTest.extend<{ window: Window }>({
  window: [
    async ({ chain, stack }, use) => {
      const proxy = await startRpcProxy(chain.rpcUrl);
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
      try {
        await use({
          reorg: chainReorg(chain),
          proxy,
          client: createChainClient({ RPC_URL: proxy.url, CHAIN_ID: chain.chainId }),
          pendingDeposit,
        });
      } finally {
        await proxy.close();
      }
    },
    { scope: "file" },
  ],
});

/**
 * A deposit's block, canonical but not yet final, is replaced and its height finalized while the
 * verifier is between two of its reads. Whichever two reads the replacement falls between, the
 * deposit must not be credited: finality is read first, and the block hash compared after it.
 */
describe("finality is read before the block hash is compared", () => {
  it.scoped({ dbOptions: { max: 6 } });

  it("the deposit's block replaced (and its height made final) before any one of the verifier's reads: never credited", async ({
    db,
    chain,
    stack,
    window: { reorg, proxy, client, pendingDeposit },
  }) => {
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
