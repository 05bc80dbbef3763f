import { parseArgs } from "node:util";
import postgres from "postgres";
import { createSql } from "../src/db/client.js";
import { seedMeteringOrgs } from "./metering-seed.js";
import {
  apiHeapMb,
  cpuMicros,
  type LoadGeneratorInterval,
  machineTicks,
  rssMb,
  runLoadGenerator,
  startBench,
  stopProcess,
} from "./support.js";

/**
 * npm run bench:soak -- --minutes 60 [--rate 400]: the metering path held at a fixed rate for a
 * long time, to see whether the API's memory stays flat and whether PostgreSQL's hot tables bloat
 * beyond what autovacuum keeps up with (issue #19). The API from the production build as its own
 * process, 1,000 orgs, authorize+settle pairs over HTTP from the metering load generator, paced.
 *
 *   --minutes N          soak length (default 60)
 *   --rate R             pairs per second; without it the bench first measures the peak for
 *                        --peak-seconds (default 20, 32 unpaced virtual users) and soaks at half
 *   --sample-seconds S   one row per S seconds (default 30)
 *   --autovacuum keep    leave the server's autovacuum as it is (default: on for the run only)
 *
 * Every sample: the API's RSS (/proc) and V8 heap (its /metrics), CPU per pair of the API and of
 * its PostgreSQL backends, achieved pairs/s and latencies, and the size, live and dead tuples and
 * autovacuum runs of the hot tables. Prints a table, then one JSON line of the summary.
 */
const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "60" },
    rate: { type: "string" },
    "peak-seconds": { type: "string", default: "20" },
    "sample-seconds": { type: "string", default: "30" },
    concurrency: { type: "string", default: "32" },
    autovacuum: { type: "string", default: "on" },
  },
});
const MINUTES = Number(opts.minutes);
const SAMPLE_S = Number(opts["sample-seconds"]);
const CONCURRENCY = Number(opts.concurrency);
if (!(MINUTES > 0) || !(SAMPLE_S > 0) || !(CONCURRENCY > 0))
  throw new Error("--minutes, --sample-seconds, --concurrency: positive numbers");
if (opts.rate !== undefined && !(Number(opts.rate) > 0))
  throw new Error("--rate: a positive number of pairs per second");
if (opts.autovacuum !== "on" && opts.autovacuum !== "keep") throw new Error('--autovacuum: "on" or "keep"');

/** The tables every pair writes; the partitions of usage_events and ledger_entries are added by name. */
const HOT_TABLES = ["holds", "usage_event_keys", "ledger_transactions", "ledger_accounts", "budget_periods"];
const PARTITIONED = ["usage_events", "ledger_entries"];

const ADMIN_URL = process.env.BENCH_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const server = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });

/**
 * This cluster runs with autovacuum off (the CI config); production runs it on, and whether it
 * keeps up is what the soak is about. So it is turned on with ALTER SYSTEM for the run and the
 * previous state put back when the bench ends, fails or is interrupted.
 */
let restoreAutovacuum: (() => Promise<void>) | undefined;
async function autovacuumOnForTheRun() {
  const [before] = await server<{ setting: string }[]>`select setting from pg_settings where name = 'autovacuum'`;
  const [ownEntry] = await server<{ setting: string }[]>`
    select setting from pg_file_settings where name = 'autovacuum' and sourcefile like '%postgresql.auto.conf'`;
  await server`alter system set autovacuum = on`;
  await server`select pg_reload_conf()`;
  console.log(`autovacuum: was ${before!.setting}, on for this run (ALTER SYSTEM; put back when the bench ends)`);
  let done = false;
  restoreAutovacuum = async () => {
    if (done) return;
    done = true;
    if (ownEntry) await server.unsafe(`alter system set autovacuum = '${ownEntry.setting.replace(/'/g, "")}'`);
    else await server`alter system reset autovacuum`;
    await server`select pg_reload_conf()`;
    // The reload is signalled, not waited for: read the setting back until it shows (up to 5 s).
    let now = "";
    for (let i = 0; i < 50 && now !== before!.setting; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      const [row] = await server<{ setting: string }[]>`select setting from pg_settings where name = 'autovacuum'`;
      now = row!.setting;
    }
    console.log(
      `autovacuum: put back (${ownEntry ? `ALTER SYSTEM SET ${ownEntry.setting}` : "ALTER SYSTEM RESET"}); now ${now}`,
    );
  };
}

const bench = await startBench("soak", { ownRedis: true });
let api: Awaited<ReturnType<typeof bench.startApi>> | undefined;
let finishing = false;
async function finish(code: number) {
  if (finishing) return;
  finishing = true;
  if (api) await stopProcess(api.child);
  await restoreAutovacuum?.().catch((err) => console.error(`autovacuum NOT put back: ${err}`));
  await bench.cleanup();
  await server.end();
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    console.log(`\n${signal}: stopping`);
    void finish(130);
  });

type Sample = {
  t_min: number;
  per_s: number;
  p50_ms: number;
  p99_ms: number;
  failed: number;
  rss_mb: number;
  heap_used_mb: number;
  heap_total_mb: number;
  new_space_mb: number;
  external_mb: number;
  api_cpu_us: number;
  pg_cpu_us: number;
  other_busy_pct: number;
  tables: Record<string, TableStats>;
};
type TableStats = { bytes: number; live: number; dead: number; autovacuums: number; last_autovacuum: string | null };

async function main() {
  const seedSql = createSql(bench.databaseUrl, { max: 8 });
  console.log("seeding 1,000 orgs…");
  const { many, gatewayKey } = await seedMeteringOrgs(seedSql);
  await seedSql.end();
  const monitor = createSql(bench.databaseUrl, { max: 1 });

  if (opts.autovacuum === "on") await autovacuumOnForTheRun();
  api = await bench.startApi();
  const { pid, base } = api;
  const load = (seconds: number, rate?: number, onInterval?: (line: LoadGeneratorInterval) => void) =>
    runLoadGenerator(
      {
        base,
        key: gatewayKey,
        mode: "pairs",
        orgs: many,
        seconds,
        concurrency: CONCURRENCY,
        batch: 1,
        tag: `soak-${Date.now()}`,
        ...(rate ? { rate } : {}),
        ...(onInterval ? { report_every_s: SAMPLE_S } : {}),
      },
      onInterval,
    );

  console.log("warming up (10 s)…");
  await load(10);
  await monitor`analyze`; // as bench:metering does: plans made on the filled tables
  let rate = Number(opts.rate);
  let peak: number | undefined;
  if (!opts.rate) {
    const peakSeconds = Number(opts["peak-seconds"]);
    console.log(`measuring the peak (${peakSeconds} s, ${CONCURRENCY} virtual users unpaced)…`);
    peak = (await load(peakSeconds)).per_s;
    rate = Math.round(peak / 2);
    console.log(`peak ${peak.toFixed(0)} pairs/s: soaking at ${rate}`);
  }

  let peakRss = 0;
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, rssMb(pid))), 1000);

  async function tableStats(): Promise<Record<string, TableStats>> {
    const rows = await monitor<(TableStats & { name: string })[]>`
      select s.relname as name, pg_total_relation_size(s.relid)::float8 as bytes, s.n_live_tup::float8 as live,
             s.n_dead_tup::float8 as dead, s.autovacuum_count::float8 as autovacuums,
             s.last_autovacuum::text as last_autovacuum
      from pg_stat_user_tables s
      where s.relname in ${monitor(HOT_TABLES)}
         or s.relid in (select inhrelid from pg_inherits where inhparent::regclass::text in ${monitor(PARTITIONED)})
      order by s.relname`;
    return Object.fromEntries(rows.map(({ name, ...t }) => [name, t]));
  }

  async function pgCpu() {
    const rows = await monitor<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
    return rows.reduce((a, r) => a + cpuMicros(r.pid), 0);
  }

  const samples: Sample[] = [];
  const startTables = await tableStats();
  const started = performance.now();
  let last = { api: cpuMicros(pid), pg: await pgCpu(), machine: machineTicks() };
  let pending = Promise.resolve();
  console.log(`soaking ${MINUTES} min at ${rate} pairs/s, a row every ${SAMPLE_S} s…`);
  printHeader();
  const onInterval = (line: LoadGeneratorInterval) => {
    pending = pending.then(async () => {
      const [heap, tables, pg] = await Promise.all([apiHeapMb(base), tableStats(), pgCpu()]);
      const apiCpu = cpuMicros(pid);
      const machine = machineTicks();
      const ours = apiCpu - last.api + (pg - last.pg);
      const busyUs = (machine.busy - last.machine.busy) * 10_000;
      const wallUs = ((machine.total - last.machine.total) * 10_000) / 2; // 2 cores
      const sample: Sample = {
        t_min: (performance.now() - started) / 60_000,
        per_s: line.per_s,
        p50_ms: line.p50_ms,
        p99_ms: line.p99_ms,
        failed: line.failed,
        rss_mb: rssMb(pid),
        heap_used_mb: heap.heap_used,
        heap_total_mb: heap.heap_total,
        new_space_mb: heap.new_space,
        external_mb: heap.external,
        api_cpu_us: (apiCpu - last.api) / Math.max(1, line.ok),
        pg_cpu_us: Math.max(0, pg - last.pg) / Math.max(1, line.ok),
        // Everything but the API and its backends: the load generator, Redis, autovacuum, other work.
        other_busy_pct: Math.max(0, (100 * (busyUs - ours)) / wallUs),
        tables,
      };
      last = { api: apiCpu, pg, machine };
      samples.push(sample);
      printRow(sample);
    });
  };
  const result = await load(MINUTES * 60, rate, onInterval);
  await pending;
  clearInterval(rssTimer);
  const endTables = await tableStats();
  await monitor.end();
  console.log(JSON.stringify(summarize({ rate, peak, result, samples, startTables, endTables, peakRss })));
}

const HEAD = [
  "min",
  "pairs/s",
  "p50 ms",
  "p99 ms",
  "failed",
  "RSS MB",
  "heap MB",
  "young MB",
  "ext MB",
  "API µs",
  "PG µs",
  "other %",
  "hot MB",
  "dead tup",
  "autovac",
];
function printHeader() {
  console.log(HEAD.map((h) => h.padStart(9)).join(""));
}
function printRow(s: Sample) {
  const tables = Object.values(s.tables);
  const cells = [
    s.t_min.toFixed(1),
    s.per_s.toFixed(0),
    s.p50_ms.toFixed(1),
    s.p99_ms.toFixed(1),
    String(s.failed),
    s.rss_mb.toFixed(0),
    s.heap_used_mb.toFixed(0),
    s.new_space_mb.toFixed(0),
    s.external_mb.toFixed(0),
    s.api_cpu_us.toFixed(0),
    s.pg_cpu_us.toFixed(0),
    s.other_busy_pct.toFixed(0),
    (tables.reduce((a, t) => a + t.bytes, 0) / 2 ** 20).toFixed(0),
    String(tables.reduce((a, t) => a + t.dead, 0)),
    String(tables.reduce((a, t) => a + t.autovacuums, 0)),
  ];
  console.log(cells.map((c) => c.padStart(9)).join(""));
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
const round = (n: number, digits = 1) => Number(n.toFixed(digits));
/** Least-squares slope of y over t (minutes), per hour. */
function slopePerHour(points: { t: number; y: number }[]) {
  if (points.length < 2) return Number.NaN;
  const mt = mean(points.map((p) => p.t));
  const my = mean(points.map((p) => p.y));
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return (num / den) * 60;
}

function summarize(run: {
  rate: number;
  peak: number | undefined;
  result: Awaited<ReturnType<typeof runLoadGenerator>>;
  samples: Sample[];
  startTables: Record<string, TableStats>;
  endTables: Record<string, TableStats>;
  peakRss: number;
}) {
  const { samples } = run;
  // The first and last windows: 10 minutes, or a third of a shorter soak.
  const window = Math.min(10, MINUTES / 3);
  const slack = SAMPLE_S / 120; // half a sample, so a window holds the rows that end near its edge
  const first = samples.filter((s) => s.t_min <= window + slack);
  const lastW = samples.filter((s) => s.t_min > MINUTES - window + slack);
  const after = samples.filter((s) => s.t_min > window + slack);
  const series = (pick: (s: Sample) => number) => ({
    first_window_mean: round(mean(first.map(pick))),
    first_window_max: round(Math.max(...first.map(pick))),
    last_window_mean: round(mean(lastW.map(pick))),
    last_window_max: round(Math.max(...lastW.map(pick))),
    slope_mb_per_h_after_first_window: round(slopePerHour(after.map((s) => ({ t: s.t_min, y: pick(s) })))),
    slope_mb_per_h_all: round(slopePerHour(samples.map((s) => ({ t: s.t_min, y: pick(s) })))),
  });
  // Partitions that held nothing during the run (other months) are left out.
  const used = Object.entries(run.endTables).filter(
    ([name, end]) => HOT_TABLES.includes(name) || end.live > 0 || end.bytes !== run.startTables[name]?.bytes,
  );
  const tables = Object.fromEntries(
    used.map(([name, end]) => {
      const start = run.startTables[name];
      const dead = samples.map((s) => s.tables[name]?.dead ?? 0);
      return [
        name,
        {
          mb_start: round((start?.bytes ?? 0) / 2 ** 20),
          mb_end: round(end.bytes / 2 ** 20),
          live_start: start?.live ?? 0,
          live_end: end.live,
          // Bytes per live row (indexes and TOAST included): flat when the table grows by its rows only.
          bytes_per_live_row_start: start?.live ? Math.round(start.bytes / start.live) : null,
          bytes_per_live_row_end: end.live ? Math.round(end.bytes / end.live) : null,
          dead_first_window_max: Math.max(0, ...first.map((s) => s.tables[name]?.dead ?? 0)),
          dead_last_window_max: Math.max(0, ...lastW.map((s) => s.tables[name]?.dead ?? 0)),
          dead_max: Math.max(0, ...dead),
          dead_end: end.dead,
          autovacuums: end.autovacuums - (start?.autovacuums ?? 0),
          last_autovacuum: end.last_autovacuum,
        },
      ];
    }),
  );
  return {
    minutes: MINUTES,
    window_minutes: round(window),
    peak_pairs_per_s: run.peak === undefined ? null : Math.round(run.peak),
    rate_pairs_per_s: run.rate,
    achieved_pairs_per_s: round(run.result.per_s),
    p50_ms: round(run.result.p50_ms, 2),
    p99_ms: round(run.result.p99_ms, 2),
    failed: run.result.failed,
    autovacuum: opts.autovacuum === "on" ? "on for the run" : "as configured",
    api_rss_mb: { ...series((s) => s.rss_mb), peak: round(run.peakRss) },
    api_heap_used_mb: series((s) => s.heap_used_mb),
    api_cpu_us_per_pair: {
      first_window: round(mean(first.map((s) => s.api_cpu_us)), 0),
      last_window: round(mean(lastW.map((s) => s.api_cpu_us)), 0),
    },
    pg_cpu_us_per_pair: {
      first_window: round(mean(first.map((s) => s.pg_cpu_us)), 0),
      last_window: round(mean(lastW.map((s) => s.pg_cpu_us)), 0),
    },
    p99_ms_by_window: { first: round(mean(first.map((s) => s.p99_ms))), last: round(mean(lastW.map((s) => s.p99_ms))) },
    other_busy_pct_mean: round(mean(samples.map((s) => s.other_busy_pct)), 0),
    tables,
  };
}

try {
  await main();
  await finish(0);
} catch (err) {
  console.error(err);
  await finish(1);
}
