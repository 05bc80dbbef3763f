import { pino, type Logger } from "pino";
import type { Address, Hex } from "viem";
import { husdAbi } from "../../abis/index.js";
import { depositSalt } from "../../src/billing/deposits/addresses.js";
import { createChainClient, type ChainClient } from "../../src/chain/client.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import type { Config } from "../../src/config.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { createTestApp, type TestApp } from "./app.js";
import type { TestChain } from "./chain-stack.js";
import type { TestDatabase } from "./database.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "./redis.js";

export type DepositStack = ReturnType<typeof depositStack>;

/** The API (in process) and the workers (in process, real BullMQ on Redis) wired to one test chain. */
export function depositStack(
  db: TestDatabase,
  chain: TestChain,
  configOverrides: Partial<Record<keyof Config, string>> = {},
) {
  const config = {
    RPC_URL: chain.rpcUrl,
    CHAIN_ID: String(chain.chainId),
    HUSD_ADDRESS: chain.husd,
    DEPOSIT_FACTORY_ADDRESS: chain.factory,
    FINALITY_CONFIRMATIONS: "3",
    DEPOSIT_SCAN_INTERVAL_MS: "200",
    ...configOverrides,
  };
  const chainClient = createChainClient({ RPC_URL: chain.rpcUrl, CHAIN_ID: chain.chainId });
  const app: TestApp = createTestApp({ sql: db.appSql, config, extra: { chain: chainClient } });
  const redis = createTestRedis();
  const prefix = uniqueRedisPrefix("deposits");
  let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;

  return {
    app,
    redis,
    prefix,
    chainClient,
    /** The workers, silent and on the stack's chain client unless told otherwise (a captured logger, a lagging node). */
    async startWorkers(opts: { logger?: Logger; chain?: ChainClient; schedulersEveryMs?: number } = {}) {
      workers = await startWorkers({
        sql: db.appSql,
        connection: redis,
        prefix,
        logger: opts.logger ?? pino({ level: "silent" }),
        clock: () => new Date(),
        config: app.config,
        chain: opts.chain ?? chainClient,
        maintenanceEveryMs: 200,
        schedulersEveryMs: opts.schedulersEveryMs,
      });
      return workers;
    },
    async stopWorkers() {
      await workers?.close();
      workers = undefined;
    },
    async close() {
      await workers?.close();
      await clearRedisPrefix(redis, `{${prefix}}`);
      redis.disconnect();
    },
    /** An org with keys, and its deposit address. */
    async orgWithAddress(name = "Depositor") {
      const org = await app.createOrg(name);
      const res = await app.call("GET", "/v1/billing/husd/deposit-address", { key: org.orgKey });
      if (res.status !== 200) throw new Error(res.text);
      return { ...org, address: res.json.address as Address, salt: depositSalt(org.id) };
    },
    /** Sends HUSD from the dev customer wallet (minting it first). */
    async sendHusd(
      to: Address,
      amount: bigint,
      token: Address = chain.husd,
    ): Promise<{ hash: Hex; blockNumber: bigint }> {
      await mintHusd(chain.rpcUrl, chain.chainId, token, DevRoles.customer.address, amount);
      const wallet = chain.clients.wallet(DevRoles.customer);
      const hash = await wallet.writeContract({
        address: token,
        abi: husdAbi,
        functionName: "transfer",
        args: [to, amount],
      });
      const receipt = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 50 });
      return { hash, blockNumber: receipt.blockNumber };
    },
    async deposits(orgKey: string) {
      return (await app.call("GET", "/v1/billing/husd/deposits", { key: orgKey })).json.data as {
        id: string;
        state: string;
        reason: string | null;
        amount_nano_usd: string | null;
        amount_base_units: string;
        tx_hash: string;
      }[];
    },
    async balanceNano(orgKey: string) {
      return BigInt((await app.call("GET", "/v1/billing/balance", { key: orgKey })).json.balance_nano_usd);
    },
  };
}
