import { readFileSync } from "node:fs";
import { request } from "node:http";
import { createApiKey } from "../src/billing/api-keys.js";
import { readCatalogFile } from "../src/billing/catalog.js";
import { at, createBillingContext } from "../src/billing/context.js";
import { grantCredits } from "../src/billing/grants.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { sampleRss } from "../test/support/rss-sampler.js";
import { seedUsageEvents } from "../test/support/seed-usage.js";
import { cpuMicros, startBench, stopProcess } from "./support.js";

/**
 * npm run bench:exports — one organization with BENCH_EXPORT_ROWS (1,000,000) usage events in
 * January 2026 (seeded by SQL, as test/support/seed-usage.ts does), exported BENCH_EXPORT_RUNS (3)
 * times as `GET /v1/billing/exports/usage.csv?group_by=event` from the API as its own process
 * (the production build; BENCH_API_TSX=1 for tsx, BENCH_API_BUNDLE=<file> for a bundle built from
 * another commit, e.g. the exporter before a change). Each run prints rows/s, MB/s, the API's CPU
 * time per 1,000 rows, its PostgreSQL backends', and the API's RSS at the start and at its peak (VmRSS sampled every
 * 50 ms from a thread of its own, test/support/rss-sampler.ts).
 * The client counts lines and bytes only, as fast as it can read.
 */
const ROWS = Number(process.env.BENCH_EXPORT_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_EXPORT_RUNS ?? 3);
const PATH = "/v1/billing/exports/usage.csv?start=2026-01-01&end=2026-02-01&group_by=event";

const bench = await startBench("exports");
const sql = createSql(bench.databaseUrl, { max: 2 });
await migrate(sql);
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, { file: await readCatalogFile() });
const org = await createOrganization(ctx, { name: "busy", billingAnchorDay: 1 });
await grantCredits(at(ctx, new Date()), {
  orgId: org.id,
  amount: 1_000_000n * 1_000_000_000n,
  reason: "bench",
  idempotencyKey: "bench",
});
const { key } = await createApiKey(ctx, { orgId: org.id, scope: "org" });
const seedStart = performance.now();
// 2 s apart: a million events fill 23 days of January.
await seedUsageEvents(sql, {
  orgId: org.id,
  count: ROWS,
  start: new Date("2026-01-01T00:00:00Z"),
  spacingMs: 2000,
  label: "bench",
});
await sql`vacuum analyze usage_events`;
console.log(`seeded ${ROWS} usage events in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

const api = await bench.startApi({ EXPORTS_MAX_CONCURRENT: "1" });

const rssKb = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
};
async function backendPids(): Promise<number[]> {
  const rows = await sql<{ pid: number }[]>`
    select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

/** One export, read to the end: its lines (header included), bytes and seconds. */
function readExport(): Promise<{ lines: number; bytes: number; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${api.base}${PATH}`, { headers: { authorization: `Bearer ${key}` } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`export answered ${res.statusCode}`));
      let lines = 0;
      let bytes = 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      });
      res.once("end", () => resolve({ lines, bytes, seconds: (performance.now() - t0) / 1000 }));
      res.once("error", reject);
    });
    req.once("error", reject);
    req.end();
  });
}

type RunResult = {
  rows: number;
  seconds: number;
  rows_per_s: number;
  mb_per_s: number;
  api_cpu_ms_per_1k_rows: number;
  pg_cpu_ms_per_1k_rows: number;
  api_start_rss_mb: number;
  api_peak_rss_mb: number;
};
const results: RunResult[] = [];
for (let run = 1; run <= RUNS; run++) {
  const startKb = rssKb(api.pid);
  const sampler = sampleRss(api.pid, 50);
  // The API's backends before and after (one may connect for the export: it counts from 0).
  const pgCpu0 = new Map((await backendPids()).map((p) => [p, cpuMicros(p)]));
  const apiCpu0 = cpuMicros(api.pid);
  const r = await readExport();
  const apiCpu = cpuMicros(api.pid) - apiCpu0;
  const pgCpu = (await backendPids()).reduce((s, p) => s + cpuMicros(p) - (pgCpu0.get(p) ?? 0), 0);
  const peakKb = Math.max((await sampler.stop()).peakKb, rssKb(api.pid));
  if (r.lines !== ROWS + 1) throw new Error(`the export has ${r.lines - 1} rows, not ${ROWS}`);
  const result: RunResult = {
    rows: ROWS,
    seconds: Number(r.seconds.toFixed(2)),
    rows_per_s: Math.round(ROWS / r.seconds),
    mb_per_s: Number((r.bytes / 1e6 / r.seconds).toFixed(1)),
    api_cpu_ms_per_1k_rows: Number((apiCpu / 1000 / (ROWS / 1000)).toFixed(2)),
    pg_cpu_ms_per_1k_rows: Number((pgCpu / 1000 / (ROWS / 1000)).toFixed(2)),
    api_start_rss_mb: Math.round(startKb / 1024),
    api_peak_rss_mb: Math.round(peakKb / 1024),
  };
  results.push(result);
  console.log(`run ${run}: ${JSON.stringify(result)}`);
}

await stopProcess(api.child);
await sql.end();
await bench.cleanup();
const best = results.reduce((a, b) => (b.rows_per_s > a.rows_per_s ? b : a));
console.log(
  JSON.stringify({
    rows: ROWS,
    runs: RUNS,
    api: process.env.BENCH_API_BUNDLE ?? (process.env.BENCH_API_TSX === "1" ? "tsx" : "dist/api.mjs"),
    best_rows_per_s: best.rows_per_s,
    rows_per_s: results.map((r) => r.rows_per_s),
    api_peak_rss_mb: Math.max(...results.map((r) => r.api_peak_rss_mb)),
  }),
);
