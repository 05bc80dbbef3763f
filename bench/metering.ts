import { MAX_BUDGET_LIMIT_NANO_USD } from "../src/billing/budgets.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { seedMeteringOrgs } from "./metering-seed.js";
import {
  apiHeapMb,
  cpuMicros,
  machineTicks,
  measureHttpFloor,
  rssMb,
  runLoadGenerator,
  startBench,
  stopProcess,
} from "./support.js";

/**
 * npm run bench:metering — the API as its own process against the real PostgreSQL and Redis,
 * driven over HTTP by a load generator in a separate process. Prints a table, then one JSON line.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const bench = await startBench("metering", { ownRedis: true });
// BENCH_BEFORE (below): the bench's database is then the earlier build's, made by its migrations
// and functions; the later build's is a copy of it once seeded, migrated by this tree.
const beforeDir = process.env.BENCH_BEFORE;
const sql = createSql(bench.databaseUrl, { max: 8 });
console.log("seeding 1 hot org and 1,000 orgs…");
const { hotOrgId, many, gatewayKey } = await seedMeteringOrgs(sql, {
  migrate: beforeDir ? { dir: `${beforeDir}/src/db/migrations`, functionsDir: `${beforeDir}/src/db/functions` } : {},
});
// The seeding is this tree's code. An earlier build (BENCH_BEFORE) from before migration 0037 also
// expects every organization to have a held account, where its holds move money: add them.
if (beforeDir)
  await sql`
    insert into ledger_accounts (id, org_id, kind)
    select 'org:' || o.id || ':held', o.id, 'org_held' from organizations o
    where not exists (select from information_schema.columns where table_name = 'ledger_accounts' and column_name = 'held')
    on conflict do nothing`;
// Profiling aid: BENCH_DB_SET="auto_explain.log_min_duration=5;session_preload_libraries=auto_explain"
// applies settings to the throwaway database, hence to the API's connections.
for (const setting of (process.env.BENCH_DB_SET ?? "").split(";").filter(Boolean)) {
  const [name, value] = setting.split("=");
  await sql.unsafe(`alter database "${new URL(bench.databaseUrl).pathname.slice(1)}" set ${name} = '${value}'`);
}
await sql.end();
const afterDatabaseUrl = beforeDir ? await bench.copyDatabase("after") : bench.databaseUrl;
if (beforeDir) {
  const after = createSql(afterDatabaseUrl, { max: 1 });
  await migrate(after);
  await after.end();
}

/**
 * BENCH_RATE_LIMITS picks the API's app-wide rate limits for each variant, run in turn against the
 * same seeded database: `on` (the default, as deployed), `off` (RATE_LIMITS_ENABLED=false), or a
 * list such as `off,on,off,on` for an A/B in one sitting (alternating, so a slow spell of the host
 * does not land on one side only). Each variant starts its own API process and warms it up.
 */
const rateLimitVariants = (process.env.BENCH_RATE_LIMITS ?? "on").split(",").map((v) => v.trim());
for (const v of rateLimitVariants)
  if (v !== "on" && v !== "off") throw new Error(`BENCH_RATE_LIMITS: "${v}" is neither on nor off`);
/**
 * BENCH_BUDGETS=off,on (or off,on,off,on) is the A/B of budgets instead: every variant runs with
 * the first BENCH_RATE_LIMITS setting, and `on` gives every organization (the hot one and the
 * 1,000) a hard org-scope budget of 10,000,000 USD a month, never reached, so each batch does all
 * the budget work (phase 1's probe finds one, phase 3b adds to its counter, phase 4 checks it);
 * `off` deletes them (deleted_at), leaving phase 1's probe only, as for an org that never had one.
 */
const budgetVariants = process.env.BENCH_BUDGETS?.split(",").map((v) => v.trim());
for (const v of budgetVariants ?? [])
  if (v !== "on" && v !== "off") throw new Error(`BENCH_BUDGETS: "${v}" is neither on nor off`);
/**
 * BENCH_BEFORE=<dir> is the A/B of two builds instead (issue #19's "against today's code"): <dir> is
 * a checkout of the earlier commit, built there (`npm run build`; its node_modules may be a
 * symlink to this one's). Variants alternate before, after, before, after (BENCH_AB to choose):
 * `before` runs <dir>/dist/api.mjs on a database made by <dir>'s migrations and SQL functions;
 * `after` runs this tree's build on a copy of that database (same organizations, same seed)
 * migrated by this tree. The seeding is this tree's code, so it must write what both schemas hold.
 * BENCH_BEFORE_CLIENT=1: the earlier build has the client's batch endpoint, so its variants run the
 * client loads too (otherwise they are skipped for it).
 */
const buildVariants = beforeDir
  ? (process.env.BENCH_AB ?? "before,after,before,after").split(",").map((v) => v.trim())
  : [];
for (const v of buildVariants)
  if (v !== "before" && v !== "after") throw new Error(`BENCH_AB: "${v}" is neither before nor after`);
type Variant = { limits: string; budgets: "on" | "off"; build?: "before" | "after" };
const variants: Variant[] = beforeDir
  ? buildVariants.map((b) => ({ limits: rateLimitVariants[0] ?? "on", budgets: "off", build: b as "before" | "after" }))
  : budgetVariants
    ? budgetVariants.map((b) => ({ limits: rateLimitVariants[0] ?? "on", budgets: b as "on" | "off" }))
    : rateLimitVariants.map((limits) => ({ limits, budgets: "off" }));

/** The database a variant runs on: the later build's copy for `after` (BENCH_BEFORE), else the bench's. */
const databaseOf = (v: Variant) => (v.build === "after" ? afterDatabaseUrl : bench.databaseUrl);

async function setBudgets(databaseUrl: string, on: boolean) {
  const admin = createSql(databaseUrl, { max: 1 });
  await admin`update budgets set deleted_at = now() where deleted_at is null`;
  if (on)
    await admin`
      insert into budgets (id, org_id, scope, limit_amount, enforcement, created_at, updated_at)
      select 'bud_bench_' || md5(random()::text), id, 'org', ${MAX_BUDGET_LIMIT_NANO_USD}, 'hard', now(), now()
      from organizations`;
  await admin.end();
}

type LoadResult = {
  mode: string;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  p99_authorize_ms?: number;
  p99_settle_ms?: number;
  ok: number;
  failed: number;
  requests: number;
  http_requests?: number;
  /**
   * CPU spent per unit (pair or event), in µs: by the API, by its PostgreSQL backends, by the
   * bench's own Redis (every request's rate-limit count), by the load generator.
   */
  cpu_us?: { api: number; pg: number; redis: number; loadgen: number; other_busy_pct: number };
  rss_mb?: number;
  /** The API's V8 heap at the end of the load (bench/support.ts apiHeapMb), MB. */
  heap_mb?: Awaited<ReturnType<typeof apiHeapMb>>;
};
type VariantResult = {
  limits: string;
  budgets: string;
  build?: string;
  hot: LoadResult;
  many: LoadResult;
  hotClient: LoadResult;
  manyClient: LoadResult;
  ingest: LoadResult;
  rss_mb: number;
};

// CPU accounting: CPU time of the API process, of every PostgreSQL backend of the bench database
// and of the bench's Redis, read from /proc around each load, so a figure survives other work
// sharing the machine.
const TICK_US = 10_000; // CLK_TCK is 100 on Linux
const monitor = createSql(bench.databaseUrl, { max: 1 });
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
// hot-client and many-client: hot and many through the gateway's client (client/gateway.ts), whose
// batching delay BENCH_CLIENT_DELAY_MS sets (default the client's: 0, the calls of one event-loop turn).
const loads = (process.env.BENCH_LOADS ?? "hot,many,ingest").split(",");
const skipped: LoadResult = { mode: "skipped", per_s: 0, p50_ms: 0, p99_ms: 0, ok: 0, failed: 0, requests: 0 };

async function runVariant(variant: Variant): Promise<VariantResult> {
  const { limits, budgets, build } = variant;
  const databaseUrl = databaseOf(variant);
  const databaseName = new URL(databaseUrl).pathname.slice(1);
  await setBudgets(databaseUrl, budgets === "on");
  const api = await bench.startApi(
    { RATE_LIMITS_ENABLED: limits.startsWith("on") ? "true" : "false", DATABASE_URL: databaseUrl },
    { bundle: build === "before" ? `${beforeDir}/dist/api.mjs` : undefined },
  );
  let maxRssMb = 0;
  let loadRssMb = 0; // peak during the current load
  const rssTimer = setInterval(() => {
    const mb = rssMb(api.pid);
    maxRssMb = Math.max(maxRssMb, mb);
    loadRssMb = Math.max(loadRssMb, mb);
  }, 200);

  async function ourTicks(): Promise<{ api: number; pg: number; redis: number }> {
    const rows = await monitor<
      { pid: number }[]
    >`select pid from pg_stat_activity where datname = ${databaseName} and pid <> pg_backend_pid()`;
    const pg = rows.reduce((a, r) => a + cpuMicros(r.pid), 0);
    return { api: cpuMicros(api.pid), pg, redis: bench.redisPid ? cpuMicros(bench.redisPid) : 0 };
  }

  async function loadOnce(
    mode: "pairs" | "ingest",
    orgs: string[],
    concurrency: number,
    batch = 1,
    tag: string = mode,
    client = false,
    seconds = SECONDS,
  ): Promise<LoadResult> {
    loadRssMb = 0;
    const before = await ourTicks();
    const machineBefore = machineTicks();
    const r = await runLoadGenerator({
      base: api.base,
      key: gatewayKey,
      mode,
      orgs,
      seconds,
      concurrency,
      batch,
      tag: `${tag}-${limits}-${budgets}-${Date.now()}`,
      client,
      clientDelayMs: process.env.BENCH_CLIENT_DELAY_MS ? Number(process.env.BENCH_CLIENT_DELAY_MS) : undefined,
      clientMaxBatch: process.env.BENCH_CLIENT_MAX_BATCH ? Number(process.env.BENCH_CLIENT_MAX_BATCH) : undefined,
    });
    const after = await ourTicks();
    const machine = machineTicks();
    // Backends that left during the load count with what they used before leaving: not at all.
    const units = mode === "pairs" ? r.ok : r.events;
    const ours = after.api - before.api + after.pg - before.pg + after.redis - before.redis + r.cpu_ms * 1000;
    const busyUs = (machine.busy - machineBefore.busy) * TICK_US;
    const wallUs = ((machine.total - machineBefore.total) * TICK_US) / 2; // 2 cores
    return {
      ...r,
      cpu_us: {
        api: (after.api - before.api) / units,
        pg: (after.pg - before.pg) / units,
        redis: (after.redis - before.redis) / units,
        loadgen: (r.cpu_ms * 1000) / units,
        other_busy_pct: Math.max(0, (100 * (busyUs - ours)) / wallUs),
      },
      rss_mb: loadRssMb,
      heap_mb: await apiHeapMb(api.base),
    };
  }

  console.log(`${build ? `${build}: ` : ""}rate limits ${limits}, budgets ${budgets}: warming up…`);
  await loadOnce("pairs", many, concurrency).catch(() => undefined);
  // Each load writes tens of thousands of rows. In production autovacuum then vacuums and analyzes
  // the tables, and a new analyze makes every session plan its statements again; this cluster
  // runs with autovacuum off (CI config), so without this stand-in, plans cached while a table was
  // nearly empty stay for the whole sitting, and each run is slower than the one before it, for
  // both builds (bench/RESULTS-metering.md, 2026-12-02, night). BENCH_ANALYZE=0 skips it (to see what
  // stale statistics cost).
  //
  // The analyze makes each of the API's sessions plan the batch's statements again on its next
  // call: the first ~100 ms of load after it ran PostgreSQL calls of 4.5–17 ms where 2–4 is usual, a
  // third of the calls over 10 ms in an 8 s run (bench/RESULTS-metering.md, 2026-12-04, ninth
  // machine). Autovacuum spreads those re-plans over hours of traffic; here they would all land at
  // the start of the measured seconds. So the same load runs BENCH_SETTLE_SECONDS (default 1)
  // unmeasured first; BENCH_SETTLE_SECONDS=0 measures from the analyze on.
  const settleSeconds = Number(process.env.BENCH_SETTLE_SECONDS ?? 1);
  const load = async (
    mode: "pairs" | "ingest",
    orgs: string[],
    concurrency: number,
    batch: number,
    tag: string,
    client = false,
  ) => {
    if (process.env.BENCH_ANALYZE !== "0") {
      const admin = createSql(databaseUrl, { max: 1 });
      await admin`vacuum (analyze)`;
      await admin.end();
    }
    if (settleSeconds > 0) await loadOnce(mode, orgs, concurrency, batch, `${tag}-settling`, client, settleSeconds);
    return loadOnce(mode, orgs, concurrency, batch, tag, client);
  };
  console.log(`rate limits ${limits}, budgets ${budgets}: running ${SECONDS}s per load…`);
  const hot = loads.includes("hot") ? await load("pairs", [hotOrgId], concurrency, 1, "hot") : skipped;
  const manyPairs = loads.includes("many") ? await load("pairs", many, concurrency, 1, "many") : skipped;
  // An earlier build (BENCH_BEFORE) may have no batch endpoint for the client: its variants run the
  // plain loads, unless BENCH_BEFORE_CLIENT=1 says it has one (a build since the client landed).
  const clientLoads = build !== "before" || process.env.BENCH_BEFORE_CLIENT === "1";
  const hotClient =
    loads.includes("hot-client") && clientLoads
      ? await load("pairs", [hotOrgId], concurrency, 1, "hot-client", true)
      : skipped;
  const manyClient =
    loads.includes("many-client") && clientLoads
      ? await load("pairs", many, concurrency, 1, "many-client", true)
      : skipped;
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
  await stopProcess(api.child);
  return { limits, budgets, build, hot, many: manyPairs, hotClient, manyClient, ingest, rss_mb: maxRssMb };
}

// The floor (issue #19): the same load generator against a bare node:http server, in this same
// sitting, so the ratios compare like with like. BENCH_FLOOR=0 skips it.
const floor = process.env.BENCH_FLOOR === "0" ? undefined : await measureHttpFloor({ seconds: SECONDS, concurrency });
if (floor) console.log(`floor (bare HTTP): ${floor.per_s.toFixed(0)} pairs/s, p99 ${floor.p99_ms.toFixed(1)} ms`);
const results: VariantResult[] = [];
for (const variant of variants) results.push(await runVariant(variant));
await monitor.end();
if (process.env.BENCH_KEEP_DB) console.log(`kept database ${bench.databaseUrl}`);
else await bench.cleanup();

const f = (n: number) => n.toFixed(1).padStart(10);
console.log(
  "\nlimits/budgets load                      per second    p50 ms    p99 ms   ok / failed    CPU µs per pair/event: API   PG     Redis  load gen  API RSS MB  heap / young MB  (other work on the machine)",
);
/** A variant's loads as the table names them, and the label its rows start with. */
const rowsOf = (v: VariantResult) =>
  [
    ["authorize+settle, 1 org", v.hot],
    ["authorize+settle, 1k orgs", v.many],
    ["same, 1 org, client", v.hotClient],
    ["same, 1k orgs, client", v.manyClient],
    ["ingest batches of 500", v.ingest],
  ] as const;
const rowLabel = (v: VariantResult, name: string) =>
  `${(v.build ?? `${v.limits}/${v.budgets}`).padEnd(14)}${name.padEnd(26)}`;
for (const v of results) {
  for (const [name, r] of rowsOf(v)) {
    if (r.mode === "skipped") continue;
    const cpu = r.cpu_us
      ? `${f(r.cpu_us.api)}${f(r.cpu_us.pg)}${f(r.cpu_us.redis)}${f(r.cpu_us.loadgen)}${f(r.rss_mb ?? 0)}${`${(r.heap_mb?.heap_total ?? 0).toFixed(0)} / ${(r.heap_mb?.new_space ?? 0).toFixed(0)}`.padStart(17)}   (${r.cpu_us.other_busy_pct.toFixed(0)}% busy)`
      : "";
    console.log(
      `${rowLabel(v, name)}${f(r.per_s)}${f(r.p50_ms)}${f(r.p99_ms)}   ${`${r.ok} / ${r.failed}`.padEnd(14)}${cpu}`,
    );
  }
}
// The tail of each call apart, for the pair loads ("–": none of that call was answered, e.g. every
// authorization refused); ingest has neither.
const ms = (value: number | undefined) => (value === undefined ? "–" : `${value.toFixed(1)} ms`);
for (const v of results)
  for (const [name, r] of rowsOf(v))
    if (r.mode !== "skipped" && (r.p99_authorize_ms !== undefined || r.p99_settle_ms !== undefined))
      console.log(
        `${rowLabel(v, name)} p99 by call: authorize ${ms(r.p99_authorize_ms)}, settle ${ms(r.p99_settle_ms)}`,
      );
const maxRssMb = Math.max(...results.map((v) => v.rss_mb));
console.log(`API peak RSS: ${maxRssMb.toFixed(0)} MB\n`);

const summary = (v: VariantResult) => {
  const worst = v.hot.per_s < v.many.per_s ? v.hot : v.many;
  return {
    authorize_settle_per_s: Math.round(worst.per_s),
    p50_ms: Number(Math.max(v.hot.p50_ms, v.many.p50_ms).toFixed(2)),
    p99_ms: Number(Math.max(v.hot.p99_ms, v.many.p99_ms).toFixed(2)),
    ingest_events_per_s: Math.round(v.ingest.per_s),
    api_rss_mb: Math.round(v.rss_mb),
    // Per load: peak RSS, and V8's committed heap and young generation at the load's end.
    api_memory_mb: Object.fromEntries(
      (
        [
          ["hot", v.hot],
          ["many", v.many],
          ["hot_client", v.hotClient],
          ["many_client", v.manyClient],
          ["ingest", v.ingest],
        ] as const
      )
        .filter(([, r]) => r.mode !== "skipped")
        .map(([load, r]) => [
          load,
          {
            rss: Math.round(r.rss_mb ?? 0),
            heap_total: Math.round(r.heap_mb?.heap_total ?? 0),
            young: Math.round(r.heap_mb?.new_space ?? 0),
            heap_used: Math.round(r.heap_mb?.heap_used ?? 0),
            external: Math.round(r.heap_mb?.external ?? 0),
          },
        ]),
    ),
    hot_org_pairs_per_s: Math.round(v.hot.per_s),
    many_orgs_pairs_per_s: Math.round(v.many.per_s),
    ...(floor
      ? {
          floor_pairs_per_s: Math.round(floor.per_s),
          ratio_many_orgs: Number((v.many.per_s / floor.per_s).toFixed(3)),
          ratio_hot_org: Number((v.hot.per_s / floor.per_s).toFixed(3)),
        }
      : {}),
    ...(v.hotClient.mode !== "skipped" || v.manyClient.mode !== "skipped"
      ? {
          // Through the gateway's client: pairs/s, and each call's latency as the caller sees it.
          hot_org_client_pairs_per_s: Math.round(v.hotClient.per_s),
          many_orgs_client_pairs_per_s: Math.round(v.manyClient.per_s),
          client_p50_ms: Number(Math.max(v.hotClient.p50_ms, v.manyClient.p50_ms).toFixed(2)),
          client_p99_ms: Number(Math.max(v.hotClient.p99_ms, v.manyClient.p99_ms).toFixed(2)),
          client_calls_per_http_request: Number(
            (
              (v.hotClient.requests + v.manyClient.requests) /
              Math.max(1, (v.hotClient.http_requests ?? 0) + (v.manyClient.http_requests ?? 0))
            ).toFixed(1),
          ),
          ...(floor
            ? {
                ratio_many_orgs_client: Number((v.manyClient.per_s / floor.per_s).toFixed(3)),
                ratio_hot_org_client: Number((v.hotClient.per_s / floor.per_s).toFixed(3)),
              }
            : {}),
        }
      : {}),
    cpu_us_per_unit: {
      hot: v.hot.cpu_us,
      many: v.many.cpu_us,
      hot_client: v.hotClient.cpu_us,
      many_client: v.manyClient.cpu_us,
      ingest: v.ingest.cpu_us,
    },
  };
};
if (results.length === 1)
  console.log(
    JSON.stringify({ rate_limits: results[0]!.limits, budgets: results[0]!.budgets, ...summary(results[0]!) }),
  );
else
  console.log(
    JSON.stringify({
      variants: results.map((v) => ({ build: v.build, rate_limits: v.limits, budgets: v.budgets, ...summary(v) })),
    }),
  );
if (process.env.BENCH_KEEP_DB) process.exit(0);
