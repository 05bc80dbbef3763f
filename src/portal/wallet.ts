/**
 * HUSD from a connected wallet: any EIP-1193 provider (a browser extension's window.ethereum).
 * Connects, switches to the deposit's chain, and sends an ERC-20 transfer to the org's deposit
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
  if (err instanceof Error && err.message) return `Your wallet said: ${err.message}`;
  return "Your wallet could not complete the request.";
}

export async function connectWallet(chainId: number): Promise<Hex> {
  const p = provider();
  const accounts = (await p.request({ method: "eth_requestAccounts" })) as Hex[];
  const account = accounts[0];
  if (!account) throw new Error("Your wallet shared no account. Unlock it and try again.");
  const current = (await p.request({ method: "eth_chainId" })) as string;
  if (Number(current) !== chainId)
    await p.request({ method: "wallet_switchEthereumChain", params: [{ chainId: numberToHex(chainId) }] });
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
