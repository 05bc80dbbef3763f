import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCatalogFile } from "../src/billing/catalog.js";
import { at, createBillingContext } from "../src/billing/context.js";
import { closeCycle } from "../src/billing/invoices/close-cycle.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { cycleStartingIn } from "../src/billing/periods.js";
import { usageReport } from "../src/billing/usage-report.js";
import { createSql, type Sql } from "../src/db/client.js";
import { migrate, readMigrations } from "../src/db/migrate.js";
import { checkLedger, mismatchCount } from "../src/ledger/check.js";
import { startBench } from "./support.js";

/**
 * npm run bench:history — history that grows for years (issue #20). Loads BENCH_EVENTS usage
 * events (20 million) of BENCH_ORGS organizations (10,000) over the 12 months before this one,
 * one busy organization with a tenth of them, each 20 events of an organization charged by one
 * balanced `usage` ledger transaction, straight into the partitioned tables with INSERT … SELECT
 * generate_series (the triggers on: balances, keys, the balance check), then times what must stay
 * fast however long the history: the busy organization's usage report for one month and for the
 * year (usageReport, what GET /v1/billing/usage runs), its cycle close (closeCycle, the month after
 * one already invoiced), and the ledger check (checkLedger, every entry). First, on a database of
 * its own, it times migration 0035 moving BENCH_MIGRATION_EVENTS (1 million) events and their
 * entries from the unpartitioned tables. Prints one JSON object; figures in bench/RESULTS-history.md.
 */
const ORGS = Number(process.env.BENCH_ORGS ?? 10_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000_000);
const MIGRATION_EVENTS = Number(process.env.BENCH_MIGRATION_EVENTS ?? 1_000_000);
const PER_TXN = 20;
const COST = 100_000; // one `api` request, nano-USD
const TXNS_PER_CHUNK = 50_000; // a million events per statement

const now = new Date();
const monthStart = (delta: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + delta, 1));
const start = monthStart(-12);
const spanMs = monthStart(0).getTime() - start.getTime();

/**
 * The shape of the load: every other organization has `perOrg` events, the busy one (org_h_1)
 * the rest; both multiples of PER_TXN. Transaction j: the busy org's k = j-th for j < busyTxns,
 * else org 2 + (j - busyTxns) mod (ORGS - 1), its k = (j - busyTxns) div (ORGS - 1)-th: orgs
 * interleaved, so time goes forward with j. An org's i-th event occurs at an even share of the
 * 12 months; a transaction is posted at its last event.
 */
function shape(events: number) {
  const perOrg = Math.floor((events * 0.9) / (ORGS - 1) / PER_TXN) * PER_TXN;
  const busy = Math.floor((events - perOrg * (ORGS - 1)) / PER_TXN) * PER_TXN;
  return { perOrg, busy, total: busy + perOrg * (ORGS - 1), txns: (busy + perOrg * (ORGS - 1)) / PER_TXN };
}

/** Organizations, their accounts and a large grant each (posted before the history starts). */
async function seedOrgs(sql: Sql) {
  await sql`insert into organizations (id, name, created_at)
            select 'org_h_' || g, 'history ' || g, ${new Date(start.getTime() - 86_400_000)} from generate_series(1, ${ORGS}::int) g`;
  await sql`insert into ledger_accounts (id, org_id, kind)
            select 'org:org_h_' || g || ':' || k, 'org_h_' || g, 'org_' || k
            from generate_series(1, ${ORGS}::int) g, unnest(array['credits', 'held']) k`;
  const grantAt = new Date(start.getTime() - 86_400_000);
  await sql.begin(async (tx) => {
    await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at)
             select 'tg_' || g, 'org_h_' || g, 'grant', 'tg_' || g, ${grantAt} from generate_series(1, ${ORGS}::int) g`;
    await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at)
             select 'tg_' || g, a, case when a like 'org:%' then 1000000000000000 else -1000000000000000 end, ${grantAt}
             from generate_series(1, ${ORGS}::int) g, unnest(array['org:org_h_' || g || ':credits', 'system:grants']) a`;
  });
}

/** Transactions [j0, j1) with their entries and 20 usage events each, in one database transaction. */
async function loadChunk(sql: Sql, s: ReturnType<typeof shape>, j0: number, j1: number, version: string) {
  const busyTxns = s.busy / PER_TXN;
  const others = s.total - s.busy;
  await sql.begin(async (tx) => {
    // txn(j): its org's number, its ordinal k within the org, and when event i of the org occurs.
    await tx`
      create temp table chunk on commit drop as
      select j, o, k, 'tu_' || j as txn,
        ${start}::timestamptz + (case when o = 1 then ((k * ${PER_TXN}::int + ${PER_TXN - 1}::int)::float8 / ${s.busy}::float8)
                                     else (((k * ${PER_TXN}::int + ${PER_TXN - 1}::int)::float8 * ${ORGS - 1}::int + o - 2) / ${others}::float8) end)
                              * ${spanMs}::float8 * interval '1 millisecond' as posted_at
      from generate_series(${j0}::int, ${j1 - 1}::int) j,
        lateral (select case when j < ${busyTxns}::int then 1 else 2 + (j - ${busyTxns}::int) % ${ORGS - 1}::int end as o,
                        case when j < ${busyTxns}::int then j else (j - ${busyTxns}::int) / ${ORGS - 1}::int end as k) m`;
    await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, description, metadata, created_at)
             select txn, 'org_h_' || o, 'usage', txn, 'metered usage', jsonb_build_object('events', ${PER_TXN}::int), posted_at from chunk`;
    await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at)
             select txn, a.account, a.amount, posted_at from chunk,
               lateral (values ('org:org_h_' || o || ':credits', ${-COST * PER_TXN}::bigint),
                               ('system:revenue', ${COST * PER_TXN}::bigint)) a(account, amount)`;
    await tx`
      insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version,
        transaction_id, recorded_at, project)
      select 'u' || j || '_' || e, 'org_h_' || o, 'k' || i, t, 'api', '', '{"requests": 1}', ${COST}::bigint, ${version}, txn, t,
        case when i % 3 = 0 then 'proj-' || (i % 5) end
      from chunk, generate_series(0, ${PER_TXN - 1}::int) e,
        lateral (select k * ${PER_TXN}::int + e as i) ii,
        lateral (select ${start}::timestamptz + (case when o = 1 then (i::float8 / ${s.busy}::float8)
                                                      else ((i::float8 * ${ORGS - 1}::int + o - 2) / ${others}::float8) end)
                                                * ${spanMs}::float8 * interval '1 millisecond' as t) tt`;
  });
}

async function load(sql: Sql, s: ReturnType<typeof shape>, version: string, label: string) {
  const t0 = performance.now();
  for (let j = 0; j < s.txns; j += TXNS_PER_CHUNK) {
    await loadChunk(sql, s, j, Math.min(s.txns, j + TXNS_PER_CHUNK), version);
    const done = Math.min(s.txns, j + TXNS_PER_CHUNK) * PER_TXN;
    console.error(`${label}: ${done.toLocaleString()} events, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  return (performance.now() - t0) / 1000;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const value = await fn();
  return [Math.round(performance.now() - t0), value];
}

const file = await readCatalogFile();
const version = file.versions[0]!.version;

// 1. Migration 0035 on a database with history in the unpartitioned tables.
const migration = await (async () => {
  const bench = await startBench("history_migration");
  const sql = createSql(bench.databaseUrl, { max: 2 });
  try {
    const all = await readMigrations();
    const before = await mkdtemp(join(tmpdir(), "bench-migrations-"));
    for (const m of all.filter((m) => m.version < "0035_partitioned_history"))
      await writeFile(join(before, `${m.version}.sql`), m.sql);
    await migrate(sql, { dir: before, functionsDir: await mkdtemp(join(tmpdir(), "bench-no-functions-")) });
    await sql`insert into ledger_accounts (id, kind) values ('system:revenue', 'system') on conflict do nothing`;
    await seedOrgs(sql);
    const s = shape(MIGRATION_EVENTS);
    await load(sql, s, version, "migration seed");
    const [[entries]] = [await sql<{ n: number }[]>`select count(*)::int as n from ledger_entries`];
    const [ms] = await timed(() => migrate(sql));
    return {
      events: s.total,
      entries: entries?.n ?? 0,
      seconds: ms / 1000,
      seconds_per_million_events: Math.round((ms / 1000 / (s.total / 1e6)) * 10) / 10,
    };
  } finally {
    await sql.end();
    await bench.cleanup();
  }
})();
console.error(`migration: ${JSON.stringify(migration)}`);

// 2. 20 million events on the partitioned tables.
const bench = await startBench("history");
const sql = createSql(bench.databaseUrl, { max: 4 });
try {
  await migrate(sql);
  const ctx = createBillingContext({ sql });
  await loadCatalog(ctx, { file, minNoticeMs: 0 });
  await seedOrgs(sql);
  const s = shape(EVENTS);
  const loadSeconds = await load(sql, s, version, "load");
  const [vacuumMs] = await timed(
    () => sql`vacuum (analyze) usage_events, usage_event_keys, ledger_entries, ledger_transactions`,
  );

  const busy = "org_h_1";
  const lastMonth = cycleStartingIn(monthStart(-1).getUTCFullYear(), monthStart(-1).getUTCMonth() + 1);
  const monthBefore = cycleStartingIn(monthStart(-2).getUTCFullYear(), monthStart(-2).getUTCMonth() + 1);
  const year = { label: "12 months", start, end: monthStart(0) };
  const reportMonthMs: number[] = [];
  let monthEvents = 0;
  for (let k = 0; k < 3; k++) {
    const [ms, report] = await timed(() => usageReport(ctx, { orgId: busy, period: lastMonth }));
    reportMonthMs.push(ms);
    monthEvents = report.products.reduce((n, p) => n + p.events, 0);
  }
  const [reportByDayMs] = await timed(() =>
    usageReport(ctx, { orgId: busy, period: lastMonth, groupBy: ["project"], granularity: "day" }),
  );
  const [reportYearMs, yearReport] = await timed(() => usageReport(ctx, { orgId: busy, period: year }));
  const [reportSmallOrgMs] = await timed(() => usageReport(ctx, { orgId: "org_h_2", period: lastMonth }));

  // The first close reads every event never invoiced (11 months of the busy org's); the next one
  // only what came after it.
  const closeAt = at(ctx, new Date());
  const [firstCloseMs, first] = await timed(() => closeCycle(closeAt, { orgId: busy, period: monthBefore }));
  const [closeMs, second] = await timed(() => closeCycle(closeAt, { orgId: busy, period: lastMonth }));

  const checkMs: number[] = [];
  let mismatches = -1;
  for (let k = 0; k < 2; k++) {
    const [ms, check] = await timed(() => checkLedger(sql));
    checkMs.push(ms);
    mismatches = mismatchCount(check);
  }
  const [counts] = await sql<{ events: number; entries: number; partitions: number }[]>`
    select (select count(*)::int from usage_events) as events, (select count(*)::int from ledger_entries) as entries,
      (select count(*)::int from partitions) as partitions`;
  const sizes = await sql<{ name: string; mb: number }[]>`
    select t as name, round(sum(pg_total_relation_size(c.oid)) / 1048576.0)::int as mb
    from unnest(array['usage_events', 'ledger_entries', 'usage_event_keys']) t
    join pg_class c on c.relname = t or c.oid in (select inhrelid from pg_inherits where inhparent = t::regclass)
    group by t order by t`;

  console.log(
    JSON.stringify(
      {
        orgs: ORGS,
        events: counts?.events,
        busy_org_events: s.busy,
        ledger_entries: counts?.entries,
        partitions: counts?.partitions,
        load_seconds: Math.round(loadSeconds),
        load_events_per_s: Math.round(s.total / loadSeconds),
        vacuum_analyze_ms: vacuumMs,
        report_month_ms: reportMonthMs,
        report_month_events: monthEvents,
        report_month_by_project_and_day_ms: reportByDayMs,
        report_year_ms: reportYearMs,
        report_year_events: yearReport.products.reduce((n, p) => n + p.events, 0),
        report_small_org_month_ms: reportSmallOrgMs,
        first_close_ms: firstCloseMs,
        first_close_lines: first.invoice.lines?.length,
        close_ms: closeMs,
        close_subtotal_nano_usd: String(second.invoice.subtotal),
        ledger_check_ms: checkMs,
        ledger_check_mismatches: mismatches,
        sizes_mb: Object.fromEntries(sizes.map((r) => [r.name, r.mb])),
        migration,
      },
      null,
      2,
    ),
  );
} finally {
  await sql.end();
  await bench.cleanup();
}
