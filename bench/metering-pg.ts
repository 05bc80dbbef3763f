import { MAX_BUDGET_LIMIT_NANO_USD } from "../src/billing/budgets.js";
import { readCatalogFile } from "../src/billing/catalog.js";
import { createBillingContext } from "../src/billing/context.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { grantCredits } from "../src/billing/grants.js";
import { Metering } from "../src/billing/metering.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { cpuMicros, startBench } from "./support.js";

/**
 * node --import tsx bench/metering-pg.ts — what a metering batch costs PostgreSQL alone, without
 * HTTP: one connection, one batch at a time, CPU of its backend read from /proc per pair (or
 * per event). Separates the fixed cost of a call from the cost per request, which decides how
 * far group commit can take the hot path on this machine (bench/RESULTS-metering.md).
 *
 *   BENCH_ORGS=1000 BENCH_BATCHES=1,4,16,64 BENCH_SECONDS=4 [BENCH_MODE=pairs|ingest] [BENCH_BUDGETS=on]
 *   [BENCH_ACTIVE_HOLDS=20000]
 *
 * pairs: each round is one metering_batch call carrying BATCH authorizations and the usage
 * events settling the previous round's holds (what the API's group commit sends under load).
 * BENCH_SPLIT=1: two calls a round instead, the usage first, then the authorizations, as the
 * gateway's client sends them in bench:metering's load (its 32 users move in lockstep, so each
 * call carries one kind only).
 * ingest: each round is BATCH usage events of random organizations, no holds.
 *
 * BENCH_AFTER_SQL=<statements>: run on the "this tree" side's database only, after its migrations.
 *
 * BENCH_BEFORE=<dir>: an A/B of the SQL in one sitting (as bench:metering's). <dir> is a checkout of
 * an earlier commit: the bench's database is made by its migrations and SQL functions and seeded,
 * then copied, and the copy migrated by this tree, so both sides start from the same rows. Each batch
 * size is measured on both in turn, in slices of BENCH_SLICE_SECONDS (default 1) for BENCH_SECONDS
 * each, so that a slow spell of the host (this one's speed moves by tens of percent within minutes)
 * lands on both sides alike. Two databases of different histories differ by more than most changes
 * (a fresh one measured 20–41 % more CPU per pair than one a few runs old, the same SQL in both).
 */
const ORGS = Number(process.env.BENCH_ORGS ?? 1000);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,4,16,64").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const MODE = process.env.BENCH_MODE ?? "pairs";
const SPLIT = process.env.BENCH_SPLIT === "1";

const beforeDir = process.env.BENCH_BEFORE;
const bench = await startBench("metering_pg");
const sql = createSql(bench.databaseUrl, { max: 1 });
await migrate(
  sql,
  beforeDir ? { dir: `${beforeDir}/src/db/migrations`, functionsDir: `${beforeDir}/src/db/functions` } : {},
);
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, { file: await readCatalogFile() });
// Experiments: BENCH_SETUP_SQL runs on the throwaway database before anything is measured
// (e.g. "alter table usage_events drop constraint usage_events_org_id_fkey"), and again on each
// measured connection (e.g. "load 'auto_explain'; set auto_explain.log_min_duration = 5").
if (process.env.BENCH_SETUP_SQL) await sql.unsafe(process.env.BENCH_SETUP_SQL);
const orgs: string[] = [];
for (let i = 0; i < ORGS; i++) {
  const org = await createOrganization(ctx, { name: `org-${i}` });
  await grantCredits(ctx, {
    orgId: org.id,
    amount: 10_000n * 1_000_000_000n,
    reason: "bench",
    idempotencyKey: "bench",
  });
  orgs.push(org.id);
}
// BENCH_BUDGETS=on: a hard org budget on every organization, never reached (as bench:metering's
// BENCH_BUDGETS), so each batch does all the budget work.
if (process.env.BENCH_BUDGETS === "on")
  await sql`
    insert into budgets (id, org_id, scope, limit_amount, enforcement, created_at, updated_at)
    select 'bud_bench_' || md5(random()::text), id, 'org', ${MAX_BUDGET_LIMIT_NANO_USD}, 'hard', now(), now()
    from organizations`;
/** A database under measurement: its connection (one backend, whose CPU is read), the API's batching, its organizations. */
type Side = {
  name: string;
  sql: ReturnType<typeof createSql>;
  metering: Metering;
  orgs: string[];
  pid: number;
  unsettled: { orgId: string; holdId: string }[];
};

async function openSide(name: string, sideSql: ReturnType<typeof createSql>, sideOrgs: string[]): Promise<Side> {
  const [backend] = await sideSql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  if (process.env.BENCH_SETUP_SQL) await sideSql.unsafe(process.env.BENCH_SETUP_SQL);
  const metering = new Metering(sideSql, { lanes: 1, maxBatch: 100_000 });
  await metering.ready();
  return { name, sql: sideSql, metering, orgs: sideOrgs, pid: backend!.pid, unsettled: [] };
}

await sql.end();
const sides: Side[] = [];
if (beforeDir) {
  const afterUrl = await bench.copyDatabase("after");
  const afterSql = createSql(afterUrl, { max: 1 });
  await migrate(afterSql);
  // BENCH_AFTER_SQL: an experiment on the copy alone (e.g. a trigger disabled), so that with
  // BENCH_BEFORE=<this tree> the two sides differ by that statement only.
  if (process.env.BENCH_AFTER_SQL) await afterSql.unsafe(process.env.BENCH_AFTER_SQL);
  sides.push(await openSide("before", createSql(bench.databaseUrl, { max: 1 }), orgs));
  sides.push(await openSide("this tree", afterSql, orgs));
} else sides.push(await openSide("this tree", createSql(bench.databaseUrl, { max: 1 }), orgs));
const randomOrg = (side: Side) => side.orgs[Math.floor(Math.random() * side.orgs.length)]!;
let seq = 0;

/** One round: `batch` authorizations and the events settling the last round's holds, in one call (two with BENCH_SPLIT). */
async function pairsRound(side: Side, batch: number) {
  const now = new Date();
  const authorize = () =>
    Array.from({ length: batch }, () => {
      const orgId = randomOrg(side);
      const estimate = { input_tokens: 1000n, output_tokens: 500n };
      return side.metering
        .authorize(
          { orgId, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds: 300 },
          now,
        )
        .then((h) => ({ orgId, holdId: h.id }));
    });
  const settle = () =>
    side.metering.recordUsageMany(
      side.unsettled.map(({ orgId, holdId }) => ({
        orgId,
        idempotencyKey: `pg-${process.pid}-${++seq}`,
        occurredAt: now,
        product: "llm",
        model: "zen-pro",
        quantities: { input_tokens: 900n, output_tokens: 450n },
        holdId,
      })),
      now,
    );
  if (SPLIT) {
    await settle();
    side.unsettled = await Promise.all(authorize());
  } else [side.unsettled] = await Promise.all([Promise.all(authorize()), settle()]);
}

async function ingestRound(side: Side, batch: number) {
  const now = new Date();
  const events = Array.from({ length: batch }, () => ({
    orgId: randomOrg(side),
    idempotencyKey: `pg-${process.pid}-${++seq}`,
    occurredAt: now,
    product: "api",
    model: undefined,
    quantities: { requests: 1n },
    holdId: undefined,
  }));
  await side.metering.recordUsageMany(events, now);
}

const round = MODE === "ingest" ? ingestRound : pairsRound;
const unit = MODE === "ingest" ? "event" : "pair";
// Warm up until the tables are past their first pages, then analyze as autovacuum would (the
// cluster here runs without it): plans cached while a table was nearly empty stay sequential
// scans until statistics change.
for (const side of sides) {
  for (let i = 0; i < 300; i++) await round(side, 16);
  await side.sql`analyze`;
}
// BENCH_ACTIVE_HOLDS=N: N holds in flight the whole time (an hour's TTL, never settled), spread over
// the organizations, as a gateway's long calls leave them, made after the statistics were taken (a
// burst of long calls since autovacuum last analyzed holds). Every read of holds must stay a probe
// per hold or per organization, whatever their number.
const activeHolds = Number(process.env.BENCH_ACTIVE_HOLDS ?? 0);
for (const side of sides)
  for (let i = 0; i < activeHolds; i += 500)
    await Promise.all(
      Array.from({ length: Math.min(500, activeHolds - i) }, () =>
        side.metering.authorize(
          {
            orgId: randomOrg(side),
            product: "llm",
            model: "zen-pro",
            estimate: { input_tokens: 10n, output_tokens: 10n },
            idempotencyKey: undefined,
            ttlSeconds: 3600,
          },
          new Date(),
        ),
      ),
    );

/** Rounds of `batch` on one side for `seconds`: the CPU its backend used and the units it wrote. */
async function measure(side: Side, batch: number, seconds: number) {
  const t0 = cpuMicros(side.pid);
  const started = performance.now();
  let units = 0;
  while (performance.now() - started < seconds * 1000) {
    await round(side, batch);
    units += batch;
  }
  return { cpuUs: cpuMicros(side.pid) - t0, units, seconds: (performance.now() - started) / 1000 };
}

const slice = sides.length > 1 ? Number(process.env.BENCH_SLICE_SECONDS ?? 1) : SECONDS;
console.log(`\n${MODE}, ${ORGS} orgs: PostgreSQL CPU per ${unit} by batch size`);
for (const batch of BATCHES) {
  const totals = sides.map(() => ({ cpuUs: 0, units: 0, seconds: 0 }));
  for (const side of sides) for (let i = 0; i < 10; i++) await round(side, batch);
  for (let spent = 0; spent < SECONDS; spent += slice)
    for (const [i, side] of sides.entries()) {
      const m = await measure(side, batch, slice);
      totals[i]!.cpuUs += m.cpuUs;
      totals[i]!.units += m.units;
      totals[i]!.seconds += m.seconds;
    }
  const perUnit = totals.map((t) => t.cpuUs / t.units);
  const figures = sides.map(
    (side, i) =>
      `${perUnit[i]!.toFixed(0).padStart(5)} µs per ${unit}, ${(totals[i]!.units / totals[i]!.seconds).toFixed(0)}/s${sides.length > 1 ? ` (${side.name})` : ""}`,
  );
  const change = sides.length > 1 ? `   this tree / before: ${(perUnit[1]! / perUnit[0]!).toFixed(3)}` : "";
  console.log(`  batch ${String(batch).padStart(5)}: ${figures.join("   ")}${change}`);
}
for (const side of sides) await side.sql.end();
if (process.env.BENCH_KEEP_DB) {
  console.log(`kept ${bench.databaseUrl}`);
  process.exit(0);
}
await bench.cleanup();
