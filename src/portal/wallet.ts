/**
 * HUSD from a connected wallet: any EIP-1193 provider (a browser extension's window.ethereum).
 * Connects, switches to the deposit's chain (adding it to a wallet that does not know it), and sends an ERC-20 transfer to the org's deposit
 * address; the transfer's data is encoded with viem. Loaded only when the customer tops up with HUSD.
 */
import { encodeFunctionData, erc20Abi, type Hex, numberToHex } from "viem";

type Eip1193 = { request(args: { method: string; params?: unknown[] }): Promise<unknown> };

export const walletAvailable = () => typeof (window as { ethereum?: unknown }).ethereum === "object";

function provider(): Eip1193 {
  const p = (window as { ethereum?: Eip1193 }).ethereum;
  if (!p) throw new Error("No wallet was found in this browser. Install one, or send HUSD to the address below.");
  return p;
}

/** What a wallet's refusal means, in words (EIP-1193 4001: the user said no; 4902: unknown chain). */
export function walletMessage(err: unknown): string {
  const code = (err as { code?: number }).code;
  if (code === 4001) return "The request was declined in your wallet.";
  if (code === 4902) return "Your wallet doesn't know the Hanzo chain yet. Add it in your wallet, then try again.";
  if (err instanceof NoPublicRpc) return err.message;
  if (err instanceof Error && err.message) return `Your wallet said: ${err.message}`;
  return "Your wallet could not complete the request.";
}

/** The chain as the API describes it for wallets (GET /v1/billing/husd/deposit-address's `chain`). */
export type ChainToAdd = {
  id: number;
  name: string;
  rpc_urls: string[];
  block_explorer_urls: string[];
  native_currency: { name: string; symbol: string; decimals: number };
};

class NoPublicRpc extends Error {}

/** EIP-1193's "unrecognized chain" (4902), also as some wallets nest it in `data.originalError`. */
const unknownChain = (err: unknown) => {
  const e = err as { code?: number; data?: { originalError?: { code?: number } } };
  return e.code === 4902 || e.data?.originalError?.code === 4902;
};

/**
 * Puts the wallet on `chain`: switch to it (EIP-3326); a wallet that does not know it (4902) is
 * asked to add it (EIP-3085), which also switches. `onStep` says what the wallet is asking the customer.
 */
export async function switchOrAddChain(chain: ChainToAdd, onStep: (what: string) => void = () => {}): Promise<void> {
  const p = provider();
  const chainId = numberToHex(chain.id);
  try {
    await p.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (err) {
    if (!unknownChain(err)) throw err;
    if (!chain.rpc_urls.length)
      throw new NoPublicRpc(
        `Your wallet doesn't know the ${chain.name} chain (id ${chain.id}), and no public RPC address is published to add it. Add the chain in your wallet, or send HUSD to the address below.`,
      );
    onStep(`Approve adding the ${chain.name} chain in your wallet…`);
    await p.request({
      method: "wallet_addEthereumChain",
      params: [
        {
          chainId,
          chainName: chain.name,
          rpcUrls: chain.rpc_urls,
          nativeCurrency: chain.native_currency,
          ...(chain.block_explorer_urls.length ? { blockExplorerUrls: chain.block_explorer_urls } : {}),
        },
      ],
    });
  }
}

export async function connectWallet(chain: ChainToAdd, onStep?: (what: string) => void): Promise<Hex> {
  const p = provider();
  const accounts = (await p.request({ method: "eth_requestAccounts" })) as Hex[];
  const account = accounts[0];
  if (!account) throw new Error("Your wallet shared no account. Unlock it and try again.");
  const current = (await p.request({ method: "eth_chainId" })) as string;
  if (Number(current) !== chain.id) {
    onStep?.(`Approve switching to the ${chain.name} chain in your wallet…`);
    await switchOrAddChain(chain, onStep);
  }
  return account;
}

/** Sends `amount` base units of the token to `to`; the transaction's hash. */
export async function sendHusd(opts: { from: Hex; token: Hex; to: Hex; amount: bigint }): Promise<Hex> {
  const data = encodeFunctionData({ abi: erc20Abi, functionName: "transfer", args: [opts.to, opts.amount] });
  return (await provider().request({
    method: "eth_sendTransaction",
    params: [{ from: opts.from, to: opts.token, data }],
  })) as Hex;
}

/** Waits for the transaction to be mined (the wallet's node answers); false if it reverted. */
export async function waitForReceipt(hash: Hex, signal: AbortSignal): Promise<boolean> {
  while (!signal.aborted) {
    const receipt = (await provider().request({ method: "eth_getTransactionReceipt", params: [hash] })) as {
      status?: string;
    } | null;
    if (receipt) return receipt.status === "0x1";
    await new Promise((r) => setTimeout(r, 1000));
  }
  return false;
}
