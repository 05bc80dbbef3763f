import { createSql } from "../src/db/client.js";
import { cpuMicros, measureHttpFloor, startBench } from "./support.js";

/**
 * npm run bench:floor — what this machine does before any billing logic, to read the metering
 * targets against (bench/RESULTS-metering.md):
 *   1. the metering load generator (same 32 virtual users, same requests) against a bare
 *      node:http server: the CPU that HTTP alone takes per authorize+settle pair;
 *   2. PostgreSQL commits of one row each, from 1 and from 32 connections: what durable commits
 *      cost without group commit.
 * Prints a table, then one JSON line.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

type Row = { what: string; per_s: number; cpu_us: Record<string, number> };
const rows: Row[] = [];

// 1. HTTP alone.
{
  const r = await measureHttpFloor({ seconds: SECONDS, concurrency: CONCURRENCY });
  rows.push({
    what: `bare HTTP server, authorize+settle pairs, ${CONCURRENCY} users`,
    per_s: r.per_s,
    cpu_us: { server: r.server_cpu_us, loadgen: r.loadgen_cpu_us },
  });
}

// 2. PostgreSQL commits, one row each, from `connections` connections at once.
async function oneRowCommits(sql: ReturnType<typeof createSql>, connections: number): Promise<Row> {
  // Open the connections first, so that their backends are counted from the start.
  await Promise.all(Array.from({ length: connections }, () => sql`select 1`));
  const pids = (await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database()`).map(
    (r) => r.pid,
  );
  const before = pids.reduce((a, p) => a + cpuMicros(p), 0);
  const deadline = performance.now() + SECONDS * 1000;
  let commits = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        await sql`insert into floor_rows (org_id, amount) values ('org', 1)`;
        commits++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const pg = (pids.reduce((a, p) => a + cpuMicros(p), 0) - before) / commits;
  return {
    what: `PostgreSQL, 1-row commits, ${connections} connection${connections > 1 ? "s" : ""}`,
    per_s: commits / seconds,
    cpu_us: { pg },
  };
}

const bench = await startBench("floor");
const sql = createSql(bench.databaseUrl, { max: CONCURRENCY });
try {
  await sql`create table floor_rows (id bigint generated always as identity primary key, org_id text not null, amount bigint not null)`;
  for (const connections of [1, CONCURRENCY]) rows.push(await oneRowCommits(sql, connections));
} finally {
  await sql.end();
  await bench.cleanup();
}

console.log("\nwhat                                                 per second    CPU µs per unit");
for (const r of rows) {
  const cpu = Object.entries(r.cpu_us)
    .map(([k, v]) => `${k} ${v.toFixed(0)}`)
    .join(", ");
  console.log(`${r.what.padEnd(52)}${r.per_s.toFixed(0).padStart(10)}    ${cpu}`);
}
const http = rows[0]!;
const httpUs = http.cpu_us.server! + http.cpu_us.loadgen!;
console.log(
  `\nAt 5,000 pairs/s two cores give 400 µs of CPU per pair; HTTP alone (server and load generator) takes ${httpUs.toFixed(0)} of them here.\n`,
);
console.log(
  JSON.stringify({
    http_pairs_per_s: Math.round(http.per_s),
    http_cpu_us_per_pair: Math.round(httpUs),
    pg_commits_per_s_1: Math.round(rows[1]!.per_s),
    pg_commits_per_s_many: Math.round(rows[2]!.per_s),
    pg_cpu_us_per_commit: Math.round(rows[1]!.cpu_us.pg!),
  }),
);
