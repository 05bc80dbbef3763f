import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { freePort } from "./free-port.js";

export type AnvilInstance = { rpcUrl: string; port: number; stop(): Promise<void> };

// The binary ships inside @foundry-rs/anvil's platform package, so nothing is downloaded.
export function anvilBinary(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve(`@foundry-rs/anvil-${process.platform}-${process.arch === "x64" ? "amd64" : process.arch}/package.json`);
  return join(dirname(pkg), "bin", "anvil");
}

export async function startAnvil(opts: { blockTime?: number; chainId?: number; slotsInAnEpoch?: number } = {}): Promise<AnvilInstance> {
  const port = await freePort();
  const args = ["--port", String(port), "--host", "127.0.0.1", "--chain-id", String(opts.chainId ?? 31337), "--silent"];
  if (opts.blockTime) args.push("--block-time", String(opts.blockTime));
  if (opts.slotsInAnEpoch) args.push("--slots-in-an-epoch", String(opts.slotsInAnEpoch));
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += String(d)));
  const rpcUrl = `http://127.0.0.1:${port}`;
  await waitForRpc(rpcUrl, child, () => stderr);
  return { rpcUrl, port, stop: () => stopChild(child) };
}

async function waitForRpc(rpcUrl: string, child: ChildProcess, stderr: () => string) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`anvil exited with ${child.exitCode}: ${stderr()}`);
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
  child.kill("SIGKILL");
  throw new Error(`anvil did not answer on ${rpcUrl} within 15s: ${stderr()}`);
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
