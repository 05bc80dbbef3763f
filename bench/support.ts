import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import postgres from "postgres";
import { npmScriptNodeFlags } from "../test/support/start-flags.js";

const ROOT = new URL("..", import.meta.url).pathname;
const ADMIN_URL = process.env.BENCH_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The node flags of `npm start` (package.json), so that the bench runs the API as deployed. */
const START_NODE_FLAGS = npmScriptNodeFlags("start");

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
  });
}

/**
 * A throwaway database and Redis prefix for one benchmark run; `cleanup` drops them. With
 * `ownRedis` the API started by `startApi` uses a redis-server of the bench's own (see startRedis).
 */
export async function startBench(name: string, opts: { ownRedis?: boolean } = {}) {
  const dbName = `hanzo_bench_${name}_${randomBytes(3).toString("hex")}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  const redisPrefix = `hanzo-bench-${name}-${randomBytes(3).toString("hex")}`;
  const redis = opts.ownRedis ? await startRedis() : undefined;
  let built = false;
  const copies: string[] = [];
  return {
    databaseUrl,
    redisPrefix,
    /** The bench's own redis-server, so its CPU can be counted (undefined: REDIS_URL's, shared). */
    redisPid: redis?.pid,
    /**
     * The API as deployed: the production build (`npm run build`, then `npm start`'s command) in
     * one node process, so its RSS is the API's own. BENCH_API_TSX=1 runs bin/api.ts through
     * tsx instead, as `npm run api` does (its loader thread and transpiled sources add ~57 MB).
     */
    async startApi(env: Record<string, string> = {}, opts: { bundle?: string } = {}) {
      const port = await freePort();
      // `npm start`'s node flags, then BENCH_API_NODE_ARGS (the later of two V8 flags wins).
      const nodeArgs = [...START_NODE_FLAGS, ...traceFlags(), ...nodeFlags(process.env.BENCH_API_NODE_ARGS)];
      let entry = ["--import", "tsx", "bin/api.ts"];
      if (opts.bundle) {
        // The other side of an A/B in one sitting (bench/metering.ts, BENCH_BEFORE).
        entry = [opts.bundle];
      } else if (process.env.BENCH_API_BUNDLE) {
        // A/B comparisons: a bundle built earlier (e.g. a copy of dist/api.mjs from another commit).
        entry = [process.env.BENCH_API_BUNDLE];
      } else if (process.env.BENCH_API_TSX !== "1") {
        if (!built) execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
        built = true;
        entry = ["dist/api.mjs"];
      }
      const child = spawn(process.execPath, [...nodeArgs, ...entry], {
        cwd: ROOT,
        env: {
          ...process.env,
          DATABASE_URL: databaseUrl,
          PORT: String(port),
          REDIS_PREFIX: redisPrefix,
          LOG_LEVEL: "warn",
          DATABASE_POOL_MAX: "16",
          ...(redis ? { REDIS_URL: redis.url } : {}),
          ...env,
        },
        stdio: ["ignore", "inherit", "inherit"],
      });
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 200; i++) {
        try {
          if ((await fetch(`${base}/healthz`)).ok) return { child, base, pid: child.pid! };
        } catch {
          // starting
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error("API did not start");
    },
    /** A copy of the bench's database as it is now (no connection may be open to it), dropped by cleanup. */
    async copyDatabase(suffix: string): Promise<string> {
      const copy = `${dbName}_${suffix}`;
      await admin.unsafe(`create database "${copy}" template "${dbName}"`);
      copies.push(copy);
      const copyUrl = new URL(databaseUrl);
      copyUrl.pathname = `/${copy}`;
      return copyUrl.toString();
    },
    async cleanup() {
      if (redis) await stopProcess(redis.child);
      for (const copy of copies) await admin.unsafe(`drop database if exists "${copy}" with (force)`);
      await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
      await admin.end();
    },
  };
}

/**
 * A redis-server of the bench's own on a free loopback port (no persistence), so the CPU that
 * rate-limit counts cost Redis is the bench's alone; BENCH_REDIS=shared (or no redis-server on the
 * PATH) leaves the API on REDIS_URL's, whose CPU other work shares (the Redis column then reads 0).
 */
export async function startRedis(): Promise<{ child: ChildProcess; url: string; pid: number } | undefined> {
  if (process.env.BENCH_REDIS === "shared") return undefined;
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  const failed = await new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(true));
    child.once("spawn", () => resolve(false));
  });
  if (failed) return undefined;
  process.once("exit", () => child.kill("SIGKILL")); // not left behind when the bench fails
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.end("PING\r\n");
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (up) return { child, url, pid: child.pid! };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error("the bench's redis-server did not start");
}

/**
 * The API's V8 heap as its /metrics reports it (prom-client's default metrics), in MB: what is
 * used, what V8 has committed, the young generation ("new" space: two semi-spaces, which V8 grows
 * under load up to --max-semi-space-size each) and memory outside the heap (Buffers).
 */
export async function apiHeapMb(base: string) {
  const none = { heap_used: Number.NaN, heap_total: Number.NaN, new_space: Number.NaN, external: Number.NaN };
  try {
    const text = await (await fetch(`${base}/metrics`)).text();
    const metric = (name: string) =>
      Number(new RegExp(`^hanzo_api_${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
    return {
      heap_used: metric("nodejs_heap_size_used_bytes"),
      heap_total: metric("nodejs_heap_size_total_bytes"),
      new_space: metric('nodejs_heap_space_size_total_bytes\\{space="new"\\}'),
      external: metric("nodejs_external_memory_bytes"),
    };
  } catch {
    return none;
  }
}

/** A process's resident memory now, in MB, read from /proc (0 once it is gone). */
export function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The machine's CPU ticks so far (all cores, 10 ms each): busy and in all, from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - cpu[4]!, total }; // idle and iowait are not busy
}

/** CPU time a process has used so far (user + system), in µs, read from /proc (0 once it is gone). */
export function cpuMicros(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime, in ticks of 10 ms (CLK_TCK 100)
  } catch {
    return 0;
  }
}

/** What bench/load-generator.ts prints last: counts, latencies and its own CPU time. */
export type LoadGeneratorResult = {
  mode: string;
  seconds: number;
  ok: number;
  failed: number;
  events: number;
  requests: number;
  /** HTTP requests sent: with the gateway's client, fewer than the calls (`requests`). */
  http_requests: number;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** Pairs: the p99 of the authorizations and of the settles apart. */
  p99_authorize_ms?: number;
  p99_settle_ms?: number;
  cpu_ms: number;
};

/** What bench/load-generator.ts takes, as one JSON argument. */
export type LoadGeneratorArgs = {
  base: string;
  key: string;
  mode: "pairs" | "ingest";
  orgs: string[];
  seconds: number;
  concurrency: number;
  batch: number;
  tag: string;
  /** Pairs through the gateway's client (client/gateway.ts), batching the virtual users' calls. */
  client?: boolean;
  /** The client's maxDelayMs (default the client's, 0). */
  clientDelayMs?: number;
  /** The client's maxBatch (default: the client's own). */
  clientMaxBatch?: number;
  /** Pairs mode: pace the virtual users to this many pairs per second in all (none: as fast as answered). */
  rate?: number;
  /** Print an interim JSON line (`"interval": true`) every this many seconds. */
  report_every_s?: number;
};

/** An interim line of bench/load-generator.ts (args.report_every_s): counts since the previous one. */
export type LoadGeneratorInterval = {
  interval: true;
  seconds: number;
  ok: number;
  failed: number;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
};

/**
 * BENCH_TRACE_DIR=<dir>: the API and every load generator record their garbage collections there
 * (bench/gc-trace.mjs), and the load generators each call's start and latency (calls-<pid>.txt),
 * for bench/slow-waves.ts.
 */
function traceFlags(): string[] {
  return process.env.BENCH_TRACE_DIR ? ["--import", `${ROOT}bench/gc-trace.mjs`] : [];
}

/** Node flags from an env var: words split on whitespace (a flag's value cannot hold a space). */
function nodeFlags(value: string | undefined): string[] {
  return (value ?? "").trim().split(/\s+/).filter(Boolean);
}

/**
 * Runs the load generator as its own process (its CPU is not the system under test's) and returns its
 * result line. BENCH_LOADGEN_NODE_ARGS: node flags for every load generator of a bench (the floor's and
 * the soak's too), as BENCH_API_NODE_ARGS for the API (e.g. `--max-semi-space-size=8`, to see what its
 * own garbage collection adds to the latencies it records).
 */
export function runLoadGenerator(
  args: LoadGeneratorArgs,
  onInterval?: (line: LoadGeneratorInterval) => void,
): Promise<LoadGeneratorResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...traceFlags(),
        ...nodeFlags(process.env.BENCH_LOADGEN_NODE_ARGS),
        "--import",
        "tsx",
        "bench/load-generator.ts",
        JSON.stringify(args),
      ],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    let last = "";
    child.stdout.on("data", (d) => {
      out += String(d);
      const lines = out.split("\n");
      out = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        last = line;
        if (onInterval && line.startsWith('{"interval":true')) onInterval(JSON.parse(line) as LoadGeneratorInterval);
      }
    });
    child.on("close", (code) => {
      const line = out.trim() || last;
      if (code !== 0) reject(new Error(`load generator exited ${code}`));
      else if (!line) reject(new Error("load generator printed no result"));
      else resolve(JSON.parse(line) as LoadGeneratorResult);
    });
  });
}

/**
 * The floor the metering targets are read against: the metering load generator (the same virtual
 * users and requests) driving a bare node:http server (bench/bare-server.ts) that answers each
 * request at once. Warmed up once, then measured: pairs/s and the CPU per pair of the server and
 * of the load generator.
 */
export async function measureHttpFloor(opts: { seconds: number; concurrency: number }) {
  const port = await freePort();
  const server = spawn(process.execPath, ["--import", "tsx", "bench/bare-server.ts"], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`bare server exited ${code}`)));
  });
  const run = async () => {
    const before = cpuMicros(server.pid!);
    const r = await runLoadGenerator({
      base: `http://127.0.0.1:${port}`,
      key: "none",
      mode: "pairs",
      orgs: ["floor"],
      seconds: opts.seconds,
      concurrency: opts.concurrency,
      batch: 1,
      tag: `floor-${Date.now()}`,
    });
    return {
      per_s: r.per_s,
      p99_ms: r.p99_ms,
      server_cpu_us: (cpuMicros(server.pid!) - before) / r.ok,
      loadgen_cpu_us: (r.cpu_ms * 1000) / r.ok,
    };
  };
  try {
    await run(); // warm-up: JIT and connections
    return await run();
  } finally {
    await stopProcess(server);
  }
}
