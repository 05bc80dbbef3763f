import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createTestClient, createWalletClient, defineChain, http, publicActions, type Address, type Hex } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { depositFactoryAbi, depositFactoryBytecode, husdAbi, husdBytecode } from "../../abis/index.js";

/**
 * The local chain for `npm run dev`, the demo and the tests: anvil from the npm package (its
 * binary arrives in a platform package, nothing is downloaded), and our own HUSD and deposit
 * factory deployed on it from anvil's well-known development accounts. Never used in production.
 */
export const DEV_MNEMONIC = "test test test test test test test test test test test junk";
export const devAccounts = Array.from({ length: 10 }, (_, i) => mnemonicToAccount(DEV_MNEMONIC, { addressIndex: i }));
/** Roles among the dev accounts: 0 deploys and owns, 1 is the treasury, 2 is a customer's wallet. */
export const DevRoles = { deployer: devAccount(0), treasury: devAccount(1), customer: devAccount(2) };

function devAccount(index: number) {
  const account = devAccounts[index];
  if (!account) throw new Error(`no dev account ${index}`);
  return account;
}

export function anvilBinary(): string {
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  return join(dirname(require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/package.json`)), "bin", "anvil");
}

export type AnvilOptions = {
  port: number;
  chainId: number;
  blockTime?: number;
  slotsInAnEpoch?: number;
  statePath?: string;
  silent?: boolean;
};

export function spawnAnvil(o: AnvilOptions): ChildProcess {
  return spawn(anvilBinary(), anvilArgs(o), { stdio: ["ignore", "pipe", "pipe"] });
}

/** anvil's command line for these options (tests spawn it themselves, to keep track of it). */
export function anvilArgs(o: AnvilOptions): string[] {
  const args = [
    "--host",
    "127.0.0.1",
    "--port",
    String(o.port),
    "--chain-id",
    String(o.chainId),
    "--mnemonic",
    DEV_MNEMONIC,
  ];
  if (o.blockTime) args.push("--block-time", String(o.blockTime));
  // finalized = latest - 2 x slots per epoch: 1 makes finality two blocks behind, as a fast L2 would.
  if (o.slotsInAnEpoch) args.push("--slots-in-an-epoch", String(o.slotsInAnEpoch));
  if (o.statePath) args.push("--state", o.statePath);
  if (o.silent !== false) args.push("--silent");
  return args;
}

export async function waitForRpc(rpcUrl: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no JSON-RPC answer at ${rpcUrl} within ${timeoutMs} ms`);
}

export function devClients(rpcUrl: string, chainId: number) {
  const chain = defineChain({
    id: chainId,
    name: "hanzo-local",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const transport = http(rpcUrl, { retryCount: 0 });
  return {
    chain,
    wallet: (account = DevRoles.deployer) => createWalletClient({ chain, transport, account }).extend(publicActions),
    test: createTestClient({ chain, transport, mode: "anvil" }).extend(publicActions),
  };
}

export type DevContracts = { husd: Address; factory: Address; deployBlock: bigint };

/** Deploys HUSD and the deposit factory (treasury = dev account 1), unless they already have code at the given addresses. */
export async function deployDevContracts(
  rpcUrl: string,
  chainId: number,
  existing?: { husd: Address; factory: Address },
): Promise<DevContracts> {
  const c = devClients(rpcUrl, chainId);
  if (existing) {
    const [a, b] = await Promise.all([
      c.test.getCode({ address: existing.husd }),
      c.test.getCode({ address: existing.factory }),
    ]);
    if (a && a !== "0x" && b && b !== "0x") return { ...existing, deployBlock: 0n };
  }
  const wallet = c.wallet();
  const deploy = async (abi: readonly unknown[], bytecode: Hex, args: readonly unknown[]) => {
    const hash = await wallet.deployContract({ abi: abi as never, bytecode, args: args as never });
    const receipt = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 100 });
    if (!receipt.contractAddress) throw new Error(`deployment ${hash} created no contract`);
    return { address: receipt.contractAddress, block: receipt.blockNumber };
  };
  const husd = await deploy(husdAbi, husdBytecode, [DevRoles.deployer.address]);
  const factory = await deploy(depositFactoryAbi, depositFactoryBytecode, [
    DevRoles.treasury.address,
    DevRoles.deployer.address,
  ]);
  return { husd: husd.address, factory: factory.address, deployBlock: husd.block };
}

/** Mints HUSD (owner only) to an address: the dev wallet's starting balance. */
export async function mintHusd(
  rpcUrl: string,
  chainId: number,
  husd: Address,
  to: Address,
  amount: bigint,
): Promise<Hex> {
  const wallet = devClients(rpcUrl, chainId).wallet();
  const hash = await wallet.writeContract({
    address: husd,
    abi: husdAbi,
    functionName: "mint",
    args: [to, amount],
  } as never);
  await wallet.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  return hash;
}
