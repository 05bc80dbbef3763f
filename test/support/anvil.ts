import type { ChildProcess } from "node:child_process";
import { spawnAnvil, waitForRpc } from "../../src/chain/local-devnet.js";
import { freePort } from "./free-port.js";

export type AnvilInstance = { rpcUrl: string; port: number; stop(): Promise<void> };

/** A bare anvil on a free port (no contracts): the contract tests deploy their own. */
export async function startAnvil(
  opts: { blockTime?: number; chainId?: number; slotsInAnEpoch?: number } = {},
): Promise<AnvilInstance> {
  const port = await freePort();
  const child = spawnAnvil({
    port,
    chainId: opts.chainId ?? 31337,
    blockTime: opts.blockTime,
    slotsInAnEpoch: opts.slotsInAnEpoch,
  });
  const rpcUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForRpc(rpcUrl);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return { rpcUrl, port, stop: () => stopChild(child) };
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
