import { readFileSync } from "node:fs";
import { createApiKey } from "../src/billing/api-keys.js";
import { readCatalogFile } from "../src/billing/catalog.js";
import { at, createBillingContext } from "../src/billing/context.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { grantCredits } from "../src/billing/grants.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { cpuMicros, runLoadGenerator, startBench, stopProcess } from "./support.js";

/**
 * npm run bench:metering — the API as its own process against the real PostgreSQL and Redis,
 * driven over HTTP by a load generator in a separate process. Prints a table, then one JSON line.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const bench = await startBench("metering");
const sql = createSql(bench.databaseUrl, { max: 8 });
await migrate(sql);
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, { file: await readCatalogFile() });

console.log("seeding 1 hot org and 1,000 orgs…");
const now = new Date();
const hot = await createOrganization(ctx, { name: "hot" });
await grantCredits(at(ctx, now), {
  orgId: hot.id,
  amount: 1_000_000n * 1_000_000_000n,
  reason: "bench",
  idempotencyKey: "bench",
});
const many: string[] = [];
for (let i = 0; i < 1000; i++) {
  const org = await createOrganization(ctx, { name: `org-${i}` });
  await grantCredits(at(ctx, now), {
    orgId: org.id,
    amount: 10_000n * 1_000_000_000n,
    reason: "bench",
    idempotencyKey: "bench",
  });
  many.push(org.id);
}
const gateway = await createApiKey(ctx, { orgId: hot.id, scope: "gateway" });
// Profiling aid: BENCH_DB_SET="auto_explain.log_min_duration=5;session_preload_libraries=auto_explain"
// applies settings to the throwaway database, hence to the API's connections.
for (const setting of (process.env.BENCH_DB_SET ?? "").split(";").filter(Boolean)) {
  const [name, value] = setting.split("=");
  await sql.unsafe(`alter database "${new URL(bench.databaseUrl).pathname.slice(1)}" set ${name} = '${value}'`);
}
await sql.end();

const api = await bench.startApi();
let maxRssMb = 0;
let loadRssMb = 0; // peak during the current load
const rssTimer = setInterval(() => {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.pid}/status`, "utf8"))?.[1] ?? 0);
    maxRssMb = Math.max(maxRssMb, kb / 1024);
    loadRssMb = Math.max(loadRssMb, kb / 1024);
  } catch {
    // process gone
  }
}, 200);

type LoadResult = {
  mode: string;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  ok: number;
  failed: number;
  requests: number;
  /** CPU spent per unit (pair or event), in µs: by the API, by its PostgreSQL backends, by the load generator. */
  cpu_us?: { api: number; pg: number; loadgen: number; other_busy_pct: number };
  rss_mb?: number;
};

// CPU accounting: CPU time of the API process and of every PostgreSQL backend of the bench
// database, read from /proc around each load, so a figure survives other work sharing the machine.
const TICK_US = 10_000; // CLK_TCK is 100 on Linux
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3]! + cpu[4]!;
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
const monitor = createSql(bench.databaseUrl, { max: 1 });
async function ourTicks(): Promise<{ api: number; pg: number; pgPids: number[] }> {
  const rows = await monitor<
    { pid: number }[]
  >`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
  const pgPids = rows.map((r) => r.pid);
  return { api: cpuMicros(api.pid), pg: pgPids.reduce((a, p) => a + cpuMicros(p), 0), pgPids };
}

async function load(
  mode: "pairs" | "ingest",
  orgs: string[],
  concurrency: number,
  batch = 1,
  tag: string = mode,
): Promise<LoadResult> {
  loadRssMb = 0;
  const before = await ourTicks();
  const machineBefore = machineTicks();
  const r = await runLoadGenerator({
    base: api.base,
    key: gateway.key,
    mode,
    orgs,
    seconds: SECONDS,
    concurrency,
    batch,
    tag: `${tag}-${Date.now()}`,
  });
  const after = await ourTicks();
  const machine = machineTicks();
  // Backends that left during the load count with what they used before leaving: not at all.
  const units = mode === "pairs" ? r.ok : r.events;
  const apiUs = (after.api - before.api) / units;
  const pg = (after.pg - before.pg) / units;
  const ours = after.api - before.api + after.pg - before.pg + r.cpu_ms * 1000;
  const busyUs = (machine.busy - machineBefore.busy) * TICK_US;
  const wallUs = ((machine.total - machineBefore.total) * TICK_US) / 2; // 2 cores
  return {
    ...r,
    cpu_us: {
      api: apiUs,
      pg,
      loadgen: (r.cpu_ms * 1000) / units,
      other_busy_pct: Math.max(0, (100 * (busyUs - ours)) / wallUs),
    },
    rss_mb: loadRssMb,
  };
}

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const loads = (process.env.BENCH_LOADS ?? "hot,many,ingest").split(",");
const skipped: LoadResult = { mode: "skipped", per_s: 0, p50_ms: 0, p99_ms: 0, ok: 0, failed: 0, requests: 0 };
console.log(`warming up…`);
await load("pairs", many, concurrency).catch(() => undefined);
// This cluster runs with autovacuum off (CI config). In production autovacuum analyzes the
// tables the warm-up just filled, which also invalidates plans cached while they were empty.
// BENCH_ANALYZE=0 skips it (to see what stale statistics cost).
if (process.env.BENCH_ANALYZE !== "0") {
  const admin = createSql(bench.databaseUrl, { max: 1 });
  await admin`analyze`;
  await admin.end();
}
console.log(`running ${SECONDS}s per load…`);
const hotPairs = loads.includes("hot") ? await load("pairs", [hot.id], concurrency, 1, "hot") : skipped;
const manyPairs = loads.includes("many") ? await load("pairs", many, concurrency, 1, "many") : skipped;
const ingest = loads.includes("ingest")
  ? await load(
      "ingest",
      many,
      Number(process.env.BENCH_INGEST_CONCURRENCY ?? 8),
      Number(process.env.BENCH_BATCH ?? 500),
      "ingest",
    )
  : skipped;
clearInterval(rssTimer);
await monitor.end();
await stopProcess(api.child);
if (process.env.BENCH_KEEP_DB) console.log(`kept database ${bench.databaseUrl}`);
else await bench.cleanup();

const f = (n: number) => n.toFixed(1).padStart(10);
console.log(
  "\nload                      per second    p50 ms    p99 ms   ok / failed    CPU µs per pair/event: API   PG  load gen  API RSS MB  (other work on the machine)",
);
for (const [name, r] of [
  ["authorize+settle, 1 org", hotPairs],
  ["authorize+settle, 1k orgs", manyPairs],
  ["ingest batches of 500", ingest],
] as const) {
  const cpu = r.cpu_us
    ? `${f(r.cpu_us.api)}${f(r.cpu_us.pg)}${f(r.cpu_us.loadgen)}${f(r.rss_mb ?? 0)}   (${r.cpu_us.other_busy_pct.toFixed(0)}% busy)`
    : "";
  console.log(
    `${name.padEnd(26)}${f(r.per_s)}${f(r.p50_ms)}${f(r.p99_ms)}   ${`${r.ok} / ${r.failed}`.padEnd(14)}${cpu}`,
  );
}
console.log(`API peak RSS: ${maxRssMb.toFixed(0)} MB\n`);
const worst = hotPairs.per_s < manyPairs.per_s ? hotPairs : manyPairs;
console.log(
  JSON.stringify({
    authorize_settle_per_s: Math.round(worst.per_s),
    p50_ms: Number(Math.max(hotPairs.p50_ms, manyPairs.p50_ms).toFixed(2)),
    p99_ms: Number(Math.max(hotPairs.p99_ms, manyPairs.p99_ms).toFixed(2)),
    ingest_events_per_s: Math.round(ingest.per_s),
    api_rss_mb: Math.round(maxRssMb),
    hot_org_pairs_per_s: Math.round(hotPairs.per_s),
    many_orgs_pairs_per_s: Math.round(manyPairs.per_s),
    cpu_us_per_unit: { hot: hotPairs.cpu_us, many: manyPairs.cpu_us, ingest: ingest.cpu_us },
  }),
);
if (process.env.BENCH_KEEP_DB) process.exit(0);
