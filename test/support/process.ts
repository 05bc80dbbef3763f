import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { npmScriptNodeFlags } from "./start-flags.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Every process a test starts goes through `spawnTracked`, and none outlives the test file:
 *
 * - each child leads its own process group, so stopping it stops what it started too (the
 *   indexer's Ponder, `npm run dev`'s anvil, API and workers);
 * - `killAllTracked` (an `afterAll` of every file, test/support/process-cleanup.ts, and this
 *   process' `exit` and termination signals) SIGKILLs every group still alive;
 * - a reaper (one `awk` per test process, in its own group) holds a pipe from this process and
 *   kills every group still registered when that pipe closes: when vitest's worker dies by
 *   SIGKILL, a crash or a timeout, its children go with it.
 */
// Kept on globalThis: a worker process that runs several test files imports this module once per
// file, and every copy must see the same children and register the hooks once.
type Registry = { tracked: Set<ChildProcess>; reaper?: ChildProcess };
const shared = globalThis as { __hanzoTrackedProcesses?: Registry };
shared.__hanzoTrackedProcesses ??= { tracked: new Set<ChildProcess>() };
const registry = shared.__hanzoTrackedProcesses;
const tracked = registry.tracked;
const firstCopy = !registry.reaper && tracked.size === 0 && !(globalThis as { __hanzoHooks?: boolean }).__hanzoHooks;

function reap(line: string) {
  let reaper = registry.reaper;
  if (!reaper) {
    // awk remembers "+pgid" and forgets "-pgid"; at end of input it kills what is left.
    reaper = spawn(
      "awk",
      [
        '/^\\+/ { live[substr($0, 2)] = 1 } /^-/ { delete live[substr($0, 2)] } END { for (g in live) system("kill -9 -" g " 2>/dev/null") }',
      ],
      { stdio: ["pipe", "ignore", "ignore"], detached: true },
    );
    reaper.unref();
    (reaper.stdin as unknown as { unref(): void }).unref();
    reaper.stdin?.on("error", () => {});
    registry.reaper = reaper;
  }
  reaper.stdin?.write(`${line}\n`);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

/** Spawns `command` as the leader of its own process group, killed with the test file at the latest. */
export function spawnTracked(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ChildProcess {
  const child = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  if (child.pid !== undefined) {
    const pid = child.pid;
    tracked.add(child);
    reap(`+${pid}`);
    // Kept after the leader exits: what it started may still run in its group (a test may check
    // that it does not); killAllTracked kills what is left when the file ends.
  }
  return child;
}

/** SIGKILLs every tracked process group (synchronous, so it works in an `exit` handler). */
export function killAllTracked(): number {
  const n = tracked.size;
  for (const child of tracked) {
    killGroup(child, "SIGKILL");
    if (registry.reaper && child.pid !== undefined) reap(`-${child.pid}`);
  }
  tracked.clear();
  return n;
}

if (firstCopy) {
  (globalThis as { __hanzoHooks?: boolean }).__hanzoHooks = true;
  process.once("exit", killAllTracked);
  for (const [signal, code] of [
    ["SIGTERM", 143],
    ["SIGINT", 130],
    ["SIGHUP", 129],
  ] as const) {
    process.once(signal, () => {
      killAllTracked();
      process.exit(code);
    });
  }
}

/** Stops a child's whole group with `signal`, then SIGKILL after `graceMs`; resolves once the leader has exited. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    killGroup(child, signal);
  });
}

export type RunningProcess = {
  child: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
  /** Resolves with the first output line matching `pattern`; rejects at once, with the output, if the process exits first. */
  waitForLine(pattern: string | RegExp, opts?: { timeoutMs?: number }): Promise<string>;
  /** Polls `check` like `waitFor`, but rejects at once, with the output, if the process exits first. */
  waitFor(check: () => Promise<boolean> | boolean, opts?: WaitOptions): Promise<void>;
};

type WaitOptions = { timeoutMs?: number; intervalMs?: number; what?: string };

/** How long a process may take to be ready: generous, because a loaded machine is slow, and an exit fails at once anyway. */
export const READY_TIMEOUT_MS = 180_000;

/** Wraps a tracked child: keeps its output, and lets tests wait on its readiness without missing its death. */
export function track(child: ChildProcess, name: string): RunningProcess {
  let out = "";
  const lineWaiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += String(d);
    for (const w of lineWaiters) w();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => resolve(code));
  });
  let exitInfo: string | undefined;
  void exited.then((code) => {
    exitInfo = `${name} exited (${code ?? child.signalCode}) before it was ready`;
    for (const w of lineWaiters) w();
  });
  const died = () => new Error(`${exitInfo}; its output:\n${out.slice(-4000)}`);

  return {
    child,
    output: () => out,
    stop: (signal = "SIGTERM") => stopChild(child, signal),
    exited,
    waitForLine(pattern, opts = {}) {
      const timeoutMs = opts.timeoutMs ?? READY_TIMEOUT_MS;
      return new Promise<string>((resolve, reject) => {
        let scanned = 0;
        const check = () => {
          const lines = out.split("\n");
          const complete = exitInfo ? lines : lines.slice(0, -1);
          for (const line of complete.slice(scanned)) {
            if (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line))
              return done(() => resolve(line));
          }
          scanned = complete.length;
          if (exitInfo) done(() => reject(died()));
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(
                new Error(
                  `${name}: no line matching ${pattern} within ${timeoutMs} ms; its output:\n${out.slice(-4000)}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timer);
          lineWaiters.delete(check);
          settle();
        };
        lineWaiters.add(check);
        check();
      });
    },
    async waitFor(check, opts = {}) {
      const timeoutMs = opts.timeoutMs ?? READY_TIMEOUT_MS;
      await waitFor(
        async () => {
          if (exitInfo) throw Object.assign(died(), { fatal: true });
          return check();
        },
        { ...opts, timeoutMs, what: `${name}: ${opts.what ?? "condition"}` },
      );
    },
  };
}

/** Starts one of our bin/ entry points as a real child process, keeping its output for assertions. */
export function startBin(script: string, env: Record<string, string>): RunningProcess {
  // `node --import tsx` runs the script in this one process: signals reach it directly (the tsx
  // CLI would put a second process in between, which can outlive a killed parent).
  return startNode(["--import", "tsx", `${ROOT}bin/${script}`], env, script);
}

/** Starts a bundle of the production build (`npm run build` writes dist/), as `npm start` does. */
export function startBuilt(
  bundle: "api.mjs" | "worker.mjs" | "indexer.mjs" | "migrate.mjs",
  env: Record<string, string>,
): RunningProcess {
  return startNode(["--enable-source-maps", `${ROOT}dist/${bundle}`], env, `dist/${bundle}`);
}

/**
 * Starts `bin/<name>.ts` bundled as the production build bundles it (esbuild, packages left
 * external), into a directory of this process's own under `.test-build/` (so it never races a
 * test that runs `npm run build` into dist/): for measuring the process as deployed, without the
 * tsx loader and its transpiled sources (~75 MB of RSS).
 */
export async function startBundled(name: "api" | "worker", env: Record<string, string>): Promise<RunningProcess> {
  const { build } = await import("esbuild");
  // Two levels below the root, as dist/ is one: paths the sources take relative to their own file
  // (the catalog, `../../catalog/pricing.json`) resolve where they do in dist/ as near as matters.
  const outdir = `${ROOT}.test-build/${process.pid}-${name}`;
  await build({
    entryPoints: [`${ROOT}bin/${name}.ts`],
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    packages: "external",
    sourcemap: true,
    outdir,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  // As `npm start` / `npm run start:worker` run it (their flags include --enable-source-maps).
  const flags = npmScriptNodeFlags(name === "api" ? "start" : "start:worker");
  return startNode([...flags, `${outdir}/${name}.mjs`], env, `bundled ${name}`);
}

function startNode(args: string[], env: Record<string, string>, name: string): RunningProcess {
  return track(spawnTracked(process.execPath, args, { env: { ...process.env, ...env } }), name);
}

/** Waits until `url` answers 2xx (an API's /readyz), failing at once if `proc` exits first. */
export function waitForHttp(proc: RunningProcess, url: string, opts: WaitOptions = {}): Promise<void> {
  return proc.waitFor(
    async () => {
      try {
        return (await fetch(url)).ok;
      } catch {
        return false; // not listening yet
      }
    },
    { intervalMs: 100, what: `${url} ready`, ...opts },
  );
}

/** The line a worker process prints once its queues run. */
export const WORKERS_STARTED = '"msg":"workers started"';

/** Polls `check` until it returns true or the deadline passes; a check that throws an error marked `fatal` fails at once. */
export async function waitFor(check: () => Promise<boolean> | boolean, opts: WaitOptions = {}) {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
  throw new Error(`timed out waiting for ${opts.what ?? "condition"}${lastError ? `: ${String(lastError)}` : ""}`);
}
