import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { stopChild } from "./anvil.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export type RunningProcess = {
  child: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
};

/** Starts one of our bin/ entry points as a real child process, keeping its output for assertions. */
export function startBin(script: string, env: Record<string, string>): RunningProcess {
  // `node --import tsx` runs the script in this one process: signals reach it directly (the tsx
  // CLI would put a second process in between, which can outlive a killed parent).
  return startNode(["--import", "tsx", `${ROOT}bin/${script}`], env);
}

/** Starts a bundle of the production build (`npm run build` writes dist/), as `npm start` does. */
export function startBuilt(bundle: "api.mjs" | "worker.mjs", env: Record<string, string>): RunningProcess {
  return startNode(["--enable-source-maps", `${ROOT}dist/${bundle}`], env);
}

function startNode(args: string[], env: Record<string, string>): RunningProcess {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => (out += String(d)));
  child.stderr?.on("data", (d) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => out, stop: (signal = "SIGTERM") => stopChild(child, signal), exited };
}

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
) {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
  throw new Error(`timed out waiting for ${opts.what ?? "condition"}${lastError ? `: ${String(lastError)}` : ""}`);
}
