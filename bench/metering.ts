import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createApiKey } from "../src/billing/api-keys.js";
import { loadCatalog, readCatalogFile } from "../src/billing/catalog.js";
import { grantCredits } from "../src/billing/grants.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { startBench, stopProcess } from "./support.js";

/**
 * npm run bench:metering — the API as its own process against the real PostgreSQL and Redis,
 * driven over HTTP by a load generator in a separate process. Prints a table, then one JSON line.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const bench = await startBench("metering");
const sql = createSql(bench.databaseUrl, { max: 8 });
await migrate(sql);
await loadCatalog(sql, await readCatalogFile());

console.log("seeding 1 hot org and 1,000 orgs…");
const now = new Date();
const hot = await createOrganization(sql, { name: "hot" });
await grantCredits(sql, { orgId: hot.id, amount: 1_000_000n * 1_000_000_000n, reason: "bench", idempotencyKey: "bench" }, now);
const many: string[] = [];
for (let i = 0; i < 1000; i++) {
  const org = await createOrganization(sql, { name: `org-${i}` });
  await grantCredits(sql, { orgId: org.id, amount: 10_000n * 1_000_000_000n, reason: "bench", idempotencyKey: "bench" }, now);
  many.push(org.id);
}
const gateway = await createApiKey(sql, { orgId: hot.id, scope: "gateway" });
await sql.end();

const api = await bench.startApi();
let maxRssMb = 0;
const rssTimer = setInterval(() => {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.pid}/status`, "utf8"))?.[1] ?? 0);
    maxRssMb = Math.max(maxRssMb, kb / 1024);
  } catch {
    // process gone
  }
}, 200);

type LoadResult = { mode: string; per_s: number; p50_ms: number; p99_ms: number; ok: number; failed: number; requests: number };
function load(mode: "pairs" | "ingest", orgs: string[], concurrency: number, batch = 1, tag: string = mode): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const args = JSON.stringify({ base: api.base, key: gateway.key, mode, orgs, seconds: SECONDS, concurrency, batch, tag: `${tag}-${Date.now()}` });
    const child = spawn(process.execPath, ["--import", "tsx", "bench/load-generator.ts", args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += String(d)));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!)) : reject(new Error(`load generator exited ${code}`))));
  });
}

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const loads = (process.env.BENCH_LOADS ?? "hot,many,ingest").split(",");
const skipped: LoadResult = { mode: "skipped", per_s: 0, p50_ms: 0, p99_ms: 0, ok: 0, failed: 0, requests: 0 };
console.log(`warming up…`);
await load("pairs", many, concurrency).catch(() => undefined);
console.log(`running ${SECONDS}s per load…`);
const hotPairs = loads.includes("hot") ? await load("pairs", [hot.id], concurrency, 1, "hot") : skipped;
const manyPairs = loads.includes("many") ? await load("pairs", many, concurrency, 1, "many") : skipped;
const ingest = loads.includes("ingest")
  ? await load("ingest", many, Number(process.env.BENCH_INGEST_CONCURRENCY ?? 8), Number(process.env.BENCH_BATCH ?? 500), "ingest")
  : skipped;
clearInterval(rssTimer);
await stopProcess(api.child);
await bench.cleanup();

const f = (n: number) => n.toFixed(1).padStart(10);
console.log("\nload                      per second    p50 ms    p99 ms   ok / failed");
for (const [name, r] of [["authorize+settle, 1 org", hotPairs], ["authorize+settle, 1k orgs", manyPairs], ["ingest batches of 500", ingest]] as const) {
  console.log(`${name.padEnd(26)}${f(r.per_s)}${f(r.p50_ms)}${f(r.p99_ms)}   ${r.ok} / ${r.failed}`);
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
  }),
);
