import type { ChildProcess } from "node:child_process";
import { type AnvilOptions, anvilArgs, anvilBinary, waitForRpc } from "../../src/chain/local-devnet.js";
import { freePort } from "./free-port.js";
import { spawnTracked, stopChild, track } from "./process.js";

export { stopChild } from "./process.js";

export type AnvilInstance = { rpcUrl: string; port: number; stop(): Promise<void> };

/**
 * anvil for a test, tracked like every test process (killed with the test file at the latest).
 * Ready when it answers JSON-RPC; an anvil that exits first (a port taken meanwhile) fails at
 * once with its output.
 */
export async function spawnTestAnvil(o: AnvilOptions): Promise<{ child: ChildProcess; rpcUrl: string }> {
  const child = spawnTracked(anvilBinary(), anvilArgs(o));
  const anvil = track(child, `anvil on port ${o.port}`);
  const rpcUrl = `http://127.0.0.1:${o.port}`;
  try {
    await anvil.waitFor(() => waitForRpc(rpcUrl, 1_000).then(() => true), { timeoutMs: 60_000, what: "JSON-RPC" });
  } catch (err) {
    await stopChild(child, "SIGKILL");
    throw err;
  }
  return { child, rpcUrl };
}

/** A bare anvil on a free port (no contracts): the contract tests deploy their own. */
export async function startAnvil(
  opts: { blockTime?: number; chainId?: number; slotsInAnEpoch?: number } = {},
): Promise<AnvilInstance> {
  const port = await freePort();
  const { child, rpcUrl } = await spawnTestAnvil({
    port,
    chainId: opts.chainId ?? 31337,
    blockTime: opts.blockTime,
    slotsInAnEpoch: opts.slotsInAnEpoch,
  });
  return { rpcUrl, port, stop: () => stopChild(child) };
}
