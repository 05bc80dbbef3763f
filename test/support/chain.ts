import {
  createTestClient,
  createWalletClient,
  defineChain,
  http,
  publicActions,
  type Abi,
  type Address,
  type Hex,
} from "viem";
import { DEV_MNEMONIC, devAccounts } from "../../src/chain/local-devnet.js";

// anvil's well-known development mnemonic: its accounts are funded with 10,000 ETH.
export const ANVIL_MNEMONIC = DEV_MNEMONIC;
export const anvilAccounts = devAccounts;

export function localChain(rpcUrl: string, id = 31337) {
  return defineChain({
    id,
    name: "anvil",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

export function createTestClients(rpcUrl: string, chainId = 31337) {
  const chain = localChain(rpcUrl, chainId);
  const transport = http(rpcUrl, { batch: false, retryCount: 0 });
  const walletClient = createWalletClient({ chain, transport, account: anvilAccounts[0]! }).extend(publicActions);
  const testClient = createTestClient({ chain, transport, mode: "anvil" }).extend(publicActions);
  return { chain, walletClient, publicClient: testClient, testClient, accounts: anvilAccounts };
}

export type TestClients = ReturnType<typeof createTestClients>;

/** Deploys a contract and waits for its receipt; returns the address. */
export async function deployContract(
  clients: TestClients,
  args: { abi: Abi; bytecode: Hex; args?: readonly unknown[]; account?: (typeof anvilAccounts)[number] },
): Promise<Address> {
  const hash = await clients.walletClient.deployContract({
    abi: args.abi,
    bytecode: args.bytecode,
    args: (args.args ?? []) as never,
    account: args.account ?? anvilAccounts[0]!,
  });
  const receipt = await clients.walletClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  if (!receipt.contractAddress) throw new Error(`deployment ${hash} created no contract`);
  return receipt.contractAddress;
}

/** evm_snapshot before each test and evm_revert after it, so tests in one file never see each other's chain state. */
export async function snapshot(clients: TestClients): Promise<() => Promise<void>> {
  const id = await clients.testClient.snapshot();
  return async () => {
    await clients.testClient.revert({ id });
  };
}
