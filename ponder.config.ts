import { createConfig } from "ponder";
import { husdAbi } from "./abis/HUSD.js";
import { loadConfig } from "./src/config.js";

const env = loadConfig();

export default createConfig({
  // As a member of hanzo_indexer: its own schemas, never billing (README, "Database roles").
  database: { kind: "postgres", connectionString: env.INDEXER_DATABASE_URL, poolConfig: { max: 10 } },
  chains: {
    hanzo: {
      id: env.CHAIN_ID,
      rpc: env.RPC_URL,
      // Local chains mine every second; poll faster than that so deposits are seen promptly.
      pollingInterval: Number(process.env.PONDER_POLLING_INTERVAL_MS ?? 500),
    },
  },
  contracts: {
    HUSD: {
      chain: "hanzo",
      abi: husdAbi,
      // Lowercased: the same contract written with other letter case must be the same Ponder build.
      address: env.HUSD_ADDRESS.toLowerCase() as `0x${string}`,
      startBlock: env.HUSD_START_BLOCK,
    },
  },
});
