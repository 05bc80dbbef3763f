import { createPublicClient, defineChain, http, type PublicClient } from "viem";
import type { Config } from "../config.js";

export type ChainClient = PublicClient;

/** A read-only client for the configured chain; we never hold a private key in the API or workers. */
export function createChainClient(config: Pick<Config, "RPC_URL" | "CHAIN_ID">): ChainClient {
  const chain = defineChain({
    id: config.CHAIN_ID,
    name: `chain-${config.CHAIN_ID}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.RPC_URL] } },
  });
  return createPublicClient({
    chain,
    transport: http(config.RPC_URL, { retryCount: 2, timeout: 10_000 }),
  }) as ChainClient;
}
