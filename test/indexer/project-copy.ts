import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestChain } from "../support/chain-stack.js";
import { freePort } from "../support/free-port.js";
import { ROOT, spawnTracked, track, type RunningProcess } from "../support/process.js";

/** What a deploy of the indexer ships: Ponder's root (config, schema, abis, src) and the entry point. */
const SHIPPED = [
  "package.json",
  "tsconfig.json",
  "ponder.config.ts",
  "ponder.schema.ts",
  "ponder-env.d.ts",
  "abis",
  "src",
  "bin",
];

export type CopiedIndexer = RunningProcess & { port: number; schema: string; startedAt: number };

/**
 * A copy of the project in a temporary directory (node_modules linked, not copied), so a test can
 * change a file as a release would and run `bin/indexer.ts` of that copy as a new deploy.
 */
export function copyProject() {
  const root = mkdtempSync(join(tmpdir(), "hanzo-indexer-deploy-"));
  for (const entry of SHIPPED) cpSync(join(ROOT, entry), join(root, entry), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"), "dir");
  return {
    root,
    /** Appends a line to a file of the copy: the smallest change a release can make. */
    append(path: string, line: string) {
      appendFileSync(join(root, path), `${line}\n`);
    },
    /** Starts the copy's `bin/indexer.ts` (not waiting for it): a deploy of whatever the copy holds now. */
    async start(chain: TestChain, databaseUrl: string, extraEnv: Record<string, string> = {}): Promise<CopiedIndexer> {
      const port = await freePort();
      const startedAt = Date.now();
      const child = spawnTracked(process.execPath, ["--import", "tsx", join(root, "bin/indexer.ts")], {
        cwd: root,
        env: {
          ...process.env,
          DATABASE_URL: databaseUrl,
          RPC_URL: chain.rpcUrl,
          CHAIN_ID: String(chain.chainId),
          HUSD_ADDRESS: chain.husd,
          HUSD_START_BLOCK: String(chain.deployBlock),
          PONDER_PORT: String(port),
          PONDER_POLLING_INTERVAL_MS: "200",
          ...extraEnv,
        },
      });
      const indexer = track(child, "the copy's indexer");
      // The schema this deploy indexes into, from the command line the entry point prints.
      const line = await indexer.waitForLine(/--schema \S+/);
      const schema = /--schema (\S+)/.exec(line)?.[1] ?? "";
      return Object.assign(indexer, { port, schema, startedAt });
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export async function isReady(indexer: CopiedIndexer): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${indexer.port}/ready`)).status === 200;
  } catch {
    return false;
  }
}

/** Waits for Ponder's /ready, failing at once (with the indexer's output) if the process exits first. */
export async function waitReady(indexer: CopiedIndexer, timeoutMs = 180_000): Promise<number> {
  await indexer.waitFor(() => isReady(indexer), { timeoutMs, intervalMs: 100, what: "ponder ready" });
  return Date.now();
}
