import type { Hex } from "viem";
import { afterEach, describe, expect } from "vitest";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient, type ChainClient } from "../../src/chain/client.js";
import { expectDepositInvariants } from "../support/deposit-invariants.js";
import { waitFor } from "../support/process.js";
import { startRpcProxy, type RpcProxy } from "../support/rpc-proxy.js";
import { depositContext } from "../support/context.js";
import type { TestApp } from "../support/app.js";
import { type ChainContext, chainTest } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

type Lag = {
  /** The chain through a proxy that can answer as a node `n` blocks behind. */
  proxy: RpcProxy;
  lagging: ChainClient;
  topup(orgKey: string, hash: Hex): ReturnType<TestApp["call"]>;
  stateOf(id: string): Promise<string | undefined>;
};

const it = chainTest.extend<{ lag: Lag }>({
  lag: [
    async ({ db, chain, stack }, use) => {
      const proxy = await startRpcProxy(chain.rpcUrl);
      try {
        await use({
          proxy,
          lagging: createChainClient({ RPC_URL: proxy.url, CHAIN_ID: chain.chainId }),
          topup: (orgKey, hash) =>
            stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } }),
          stateOf: async (id) =>
            (await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`)[0]?.state,
        });
      } finally {
        await proxy.close();
      }
    },
    { scope: "file" },
  ],
});

/**
 * The workers' RPC node is 12 blocks behind the one that saw (and credited) a deposit, as a
 * load-balanced or slow provider is. A node below a block's height cannot say anything about
 * that block: not gone, not replaced, not final.
 */
describe("a lagging RPC node proves nothing", () => {
  it.scoped({ dbOptions: { max: 8 } });
  afterEach<ChainContext & { lag: Lag }>(async ({ stack, lag }) => {
    lag.proxy.setLag(0);
    await stack.stopWorkers();
  });

  it("the audit on a node behind a credited deposit's block reverses nothing, and the credit stands once it catches up", async ({
    db,
    chain,
    stack,
    lag: { proxy, lagging, topup, stateOf },
  }) => {
    const org = await stack.orgWithAddress("Lag Audit Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 5n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await chain.mine(5);
    // Credited from an up-to-date node.
    expect(
      (await verifyDeposit(depositContext(db.sql, stack.chainClient, stack.app.config), { depositId: id })).state,
    ).toBe("credited");

    proxy.setLag(12);
    expect(await lagging.getBlockNumber({ cacheTime: 0 })).toBeLessThan(blockNumber);
    await auditCreditedDeposits(depositContext(db.sql, lagging, stack.app.config));
    expect(await stateOf(id)).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);

    // The workers on that node, auditing every 200 ms: wait for several audits to have asked it.
    await stack.startWorkers({ chain: lagging });
    proxy.reset();
    await waitFor(() => proxy.served().filter((m) => m === "eth_getBlockByNumber").length >= 10, {
      what: "audits on the lagging node",
    });
    expect(await stateOf(id)).toBe("credited");

    proxy.setLag(0);
    proxy.reset();
    await waitFor(() => proxy.served().filter((m) => m === "eth_getBlockByNumber").length >= 10, {
      what: "audits on the caught-up node",
    });
    expect(await stateOf(id)).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);
    const alerts = await db.sql`select 1 from operator_alerts where subject = ${id}`;
    expect(alerts).toHaveLength(0);
    await expectDepositInvariants(db.sql);
  });

  it("the verifier on a node behind a pending deposit's block neither orphans it nor fails: it waits, and credits once the node catches up", async ({
    db,
    chain,
    stack,
    lag: { proxy, lagging, topup, stateOf },
  }) => {
    const org = await stack.orgWithAddress("Lag Verify Co");
    const { hash } = await stack.sendHusd(org.address, 3n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await chain.mine(5);
    proxy.setLag(12);
    const deps = depositContext(db.sql, lagging, stack.app.config);
    const outcome = await verifyDeposit(deps, { depositId: id });
    expect(outcome.state).toBe("seen");
    expect(await stateOf(id)).toBe("seen");

    proxy.setLag(0);
    expect((await verifyDeposit(deps, { depositId: id })).state).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(3n * USD);
  });
});
