import type { Address } from "viem";
import { deployDevContracts, devClients } from "../../src/chain/local-devnet.js";
import { spawnTestAnvil } from "./anvil.js";
import { freePort } from "./free-port.js";
import { startBin, stopChild, type RunningProcess } from "./process.js";

export type TestChain = Awaited<ReturnType<typeof startTestChain>>;

/**
 * One anvil per test file with our HUSD and deposit factory deployed. Automine by default (each
 * transaction is its own block); `slotsInAnEpoch: 1` puts the `finalized` tag two blocks behind.
 */
export async function startTestChain(opts: { blockTime?: number; chainId?: number; slotsInAnEpoch?: number } = {}) {
  const port = await freePort();
  const chainId = opts.chainId ?? 31337;
  const { child, rpcUrl } = await spawnTestAnvil({
    port,
    chainId,
    slotsInAnEpoch: opts.slotsInAnEpoch ?? 1,
    blockTime: opts.blockTime,
  });
  const contracts = await deployDevContracts(rpcUrl, chainId);
  const clients = devClients(rpcUrl, chainId);
  return {
    rpcUrl,
    chainId,
    husd: contracts.husd as Address,
    factory: contracts.factory as Address,
    deployBlock: contracts.deployBlock,
    clients,
    /** Mines `n` empty blocks at once. */
    mine: (n: number) => clients.test.mine({ blocks: n }),
    stop: () => stopChild(child),
  };
}

/** Ponder (bin/indexer.ts) as a child process against this chain and database. */
export async function startIndexer(
  chain: TestChain,
  databaseUrl: string,
  extraEnv: Record<string, string> = {},
): Promise<RunningProcess & { port: number }> {
  const port = await freePort();
  const indexer = startBin("indexer.ts", {
    DATABASE_URL: databaseUrl,
    RPC_URL: chain.rpcUrl,
    CHAIN_ID: String(chain.chainId),
    HUSD_ADDRESS: chain.husd,
    HUSD_START_BLOCK: String(chain.deployBlock),
    PONDER_PORT: String(port),
    PONDER_POLLING_INTERVAL_MS: "200",
    ...extraEnv,
  });
  await indexer.waitFor(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200, {
    intervalMs: 250,
    what: "ponder ready",
  });
  return Object.assign(indexer, { port });
}
