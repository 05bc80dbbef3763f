import { readCatalogFile } from "../src/billing/catalog.js";
import { at, createBillingContext } from "../src/billing/context.js";
import { closeDueCycles } from "../src/billing/invoices/close-due-cycles.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { recordUsageBatch, type UsageRequest } from "../src/billing/usage.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { startBench } from "./support.js";

/**
 * npm run bench:invoices — closes the cycle of 10,000 organizations with 20 invoice lines each
 * (20 priced models) against the real PostgreSQL, and prints the time it took.
 */
const ORGS = Number(process.env.BENCH_ORGS ?? 10_000);
const LINES = 20;
const bench = await startBench("invoices");
const sql = createSql(bench.databaseUrl, { max: 12 });
await migrate(sql);

// A catalog with 20 LLM models, so that each org's usage makes 20 distinct invoice lines.
const file = await readCatalogFile();
const base = file.versions[0]!;
const models = Object.fromEntries(
  Array.from({ length: LINES }, (_, i) => [
    `bench-${String(i + 1).padStart(2, "0")}`,
    { input_tokens: `0.00000${i + 1}`, output_tokens: `0.0000${i + 1}` },
  ]),
);
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, {
  file: { versions: [{ ...base, products: { ...base.products, llm: { ...base.products.llm!, models } } }] },
});

console.log(`seeding ${ORGS} organizations with ${LINES} usage events each…`);
const created = new Date("2026-10-02T00:00:00Z");
await sql`
  insert into organizations (id, name, created_at)
  select 'org_bench_' || g, 'bench ' || g, ${created} from generate_series(1, ${ORGS}) g`;
await sql`
  insert into ledger_accounts (id, org_id, kind)
  select 'org:org_bench_' || g || ':' || k, 'org_bench_' || g, 'org_' || k
  from generate_series(1, ${ORGS}) g, unnest(array['credits', 'held']) k`;
const seedStart = performance.now();
const occurredAt = new Date("2026-10-15T00:00:00Z");
let batch: UsageRequest[] = [];
for (let o = 1; o <= ORGS; o++) {
  for (let m = 0; m < LINES; m++) {
    const model = Object.keys(models)[m]!;
    batch.push({
      orgId: `org_bench_${o}`,
      idempotencyKey: `e${m}`,
      occurredAt,
      product: "llm",
      model,
      quantities: { input_tokens: 1000n, output_tokens: 100n },
      cost: 1_000_000n,
      catalogVersion: base.version,
      holdId: undefined,
    });
  }
  if (batch.length >= 2000 || o === ORGS) {
    await recordUsageBatch(at(ctx, occurredAt), { requests: batch });
    batch = [];
  }
}
console.log(`seeded ${ORGS * LINES} usage events in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const t0 = performance.now();
const result = await closeDueCycles(at(ctx, new Date("2026-11-01T00:05:00Z")), { concurrency });
const seconds = (performance.now() - t0) / 1000;
const [lines] = await sql<{ n: number }[]>`select count(*)::int as n from invoice_lines`;
await sql.end();
await bench.cleanup();

console.log(`\norganizations  invoices  lines      seconds  invoices/s`);
console.log(
  `${String(ORGS).padEnd(15)}${String(result.created).padEnd(10)}${String(lines!.n).padEnd(11)}${seconds.toFixed(1).padEnd(9)}${(result.created / seconds).toFixed(0)}\n`,
);
console.log(
  JSON.stringify({
    orgs: ORGS,
    invoices: result.created,
    lines: lines!.n,
    close_seconds: Number(seconds.toFixed(2)),
    invoices_per_s: Math.round(result.created / seconds),
    concurrency,
  }),
);
