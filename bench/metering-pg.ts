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
 * ingest: each round is BATCH usage events of random organizations, no holds.
 */
const ORGS = Number(process.env.BENCH_ORGS ?? 1000);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,4,16,64").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const MODE = process.env.BENCH_MODE ?? "pairs";

const bench = await startBench("metering_pg");
const sql = createSql(bench.databaseUrl, { max: 1 });
await migrate(sql);
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, { file: await readCatalogFile() });
// Experiments: BENCH_SETUP_SQL runs on the throwaway database before anything is measured
// (e.g. "alter table usage_events drop constraint usage_events_org_id_fkey").
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
const [backend] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
const cpu = () => cpuMicros(backend!.pid);

const metering = new Metering(sql, { lanes: 1, maxBatch: 100_000 });
await metering.ready();
const randomOrg = () => orgs[Math.floor(Math.random() * orgs.length)]!;
let seq = 0;
let unsettled: { orgId: string; holdId: string }[] = [];

/** One metering_batch call: `batch` authorizations, plus the events settling the last round's holds. */
async function pairsRound(batch: number) {
  const now = new Date();
  const held = Array.from({ length: batch }, () => {
    const orgId = randomOrg();
    const estimate = { input_tokens: 1000n, output_tokens: 500n };
    return metering
      .authorize({ orgId, product: "llm", model: "zen-pro", estimate, idempotencyKey: undefined, ttlSeconds: 300 }, now)
      .then((h) => ({ orgId, holdId: h.id }));
  });
  const settled = metering.recordUsageMany(
    unsettled.map(({ orgId, holdId }) => ({
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
  [unsettled] = await Promise.all([Promise.all(held), settled]);
}

async function ingestRound(batch: number) {
  const now = new Date();
  const events = Array.from({ length: batch }, () => ({
    orgId: randomOrg(),
    idempotencyKey: `pg-${process.pid}-${++seq}`,
    occurredAt: now,
    product: "api",
    model: undefined,
    quantities: { requests: 1n },
    holdId: undefined,
  }));
  await metering.recordUsageMany(events, now);
}

const round = MODE === "ingest" ? ingestRound : pairsRound;
// Warm up until the tables are past their first pages, then analyze as autovacuum would (the
// cluster here runs without it): plans cached while a table was nearly empty stay sequential
// scans until statistics change.
for (let i = 0; i < 300; i++) await round(16);
await sql`analyze`;
// BENCH_ACTIVE_HOLDS=N: N holds in flight the whole time (an hour's TTL, never settled), spread over
// the organizations, as a gateway's long calls leave them, made after the statistics were taken (a
// burst of long calls since autovacuum last analyzed holds). Every read of holds must stay a probe
// per hold or per organization, whatever their number.
const activeHolds = Number(process.env.BENCH_ACTIVE_HOLDS ?? 0);
for (let i = 0; i < activeHolds; i += 500)
  await Promise.all(
    Array.from({ length: Math.min(500, activeHolds - i) }, () =>
      metering.authorize(
        {
          orgId: randomOrg(),
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

console.log(`\n${MODE}, ${ORGS} orgs: PostgreSQL CPU per ${MODE === "ingest" ? "event" : "pair"} by batch size`);
for (const batch of BATCHES) {
  for (let i = 0; i < 10; i++) await round(batch);
  const t0 = cpu();
  const started = performance.now();
  let units = 0;
  while (performance.now() - started < SECONDS * 1000) {
    await round(batch);
    units += batch;
  }
  const seconds = (performance.now() - started) / 1000;
  const us = (cpu() - t0) / units;
  console.log(
    `  batch ${String(batch).padStart(5)}: ${us.toFixed(0).padStart(5)} µs per ${MODE === "ingest" ? "event" : "pair"}, ${(units / seconds).toFixed(0)}/s`,
  );
}
await sql.end();
if (process.env.BENCH_KEEP_DB) {
  console.log(`kept ${bench.databaseUrl}`);
  process.exit(0);
}
await bench.cleanup();
