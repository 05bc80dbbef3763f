import { createBillingContext } from "../src/billing/context.js";
import { expireHolds } from "../src/billing/holds.js";
import { Metering } from "../src/billing/metering.js";
import { createSql } from "../src/db/client.js";
import { seedMeteringOrgs } from "./metering-seed.js";
import { startBench } from "./support.js";

/**
 * node --import tsx bench/due-holds.ts — what a backlog of due holds (a gateway lost them: never
 * settled, past their TTL, not yet swept) costs other organizations' batches under plans made right
 * after a vacuum, with holds_active_expiry as before migration 0044 (`old`: any query over active
 * holds may read it) and as since (`new`: the sweeper's alone). Both in one database, alternating:
 * for each, the index as it was, a vacuum, a fresh session whose first batch makes its plans, then
 * 10,000 of one organization's holds that come due, and 30 batches of 16 other organizations'
 * authorizations timed on that session; the sweeper then expires the backlog.
 */
const BACKLOG = 10_000;
const BATCHES = 30;
const INDEX = {
  old: "create index holds_active_expiry on holds (expires_at) where status = 'active'",
  new: "create index holds_active_expiry on holds (expires_at) where status = 'active' and org_id <> ''",
};

const bench = await startBench("due_holds");
const sql = createSql(bench.databaseUrl, { max: 4 });
// 17 organizations with credits (and a hot one, unused): one loses its holds, 16 authorize.
const { many } = await seedMeteringOrgs(sql, { orgs: 17 });
const [lostOrg, ...orgs] = many as [string, ...string[]];
const estimate = { input_tokens: 10n, output_tokens: 10n };
const request = (orgId: string, ttlSeconds: number) => ({
  orgId,
  product: "llm",
  model: "zen-pro",
  estimate,
  idempotencyKey: undefined,
  ttlSeconds,
});

let now = Date.now();
for (const round of [1, 2])
  for (const variant of ["old", "new"] as const) {
    // Two hours on: every hold of the previous variant is due, and swept first, so the partial
    // indexes are empty when vacuumed, as in a quiet spell.
    now += 2 * 3_600_000;
    const at = new Date(now);
    const atCtx = createBillingContext({ sql, clock: () => at });
    while ((await expireHolds(atCtx)) > 0);
    await sql.unsafe("drop index holds_active_expiry");
    await sql.unsafe(INDEX[variant]);
    await sql.unsafe("vacuum analyze holds");

    const session = createSql(bench.databaseUrl, { max: 1 });
    const measured = new Metering(session, { lanes: 1 });
    await measured.ready();
    await measured.authorize(request(orgs[0] as string, 3600), at); // makes the session's plans
    const gateway = new Metering(sql, { lanes: 1 });
    await gateway.ready();
    for (let i = 0; i < BACKLOG; i += 1000)
      await Promise.all(Array.from({ length: 1000 }, () => gateway.authorize(request(lostOrg, 60), at)));

    const later = new Date(now + 10 * 60_000);
    const ms: number[] = [];
    for (let k = 0; k < BATCHES; k++) {
      const t0 = performance.now();
      await measured.authorizeMany(
        orgs.map((orgId) => request(orgId, 3600)),
        later,
      );
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const sweepStarted = performance.now();
    const laterCtx = createBillingContext({ sql, clock: () => later });
    let swept = 0;
    for (let n = await expireHolds(laterCtx); n > 0; n = await expireHolds(laterCtx)) swept += n;
    console.log(
      `round ${round}, ${variant}: a batch of ${orgs.length} organizations' authorizations with ${BACKLOG} of another's holds due: ` +
        `p50 ${ms[Math.floor(BATCHES / 2)]?.toFixed(2)} ms, max ${ms[BATCHES - 1]?.toFixed(2)} ms; ` +
        `the sweeper then expired ${swept} in ${(performance.now() - sweepStarted).toFixed(0)} ms`,
    );
    await session.end();
  }
await sql.end();
await bench.cleanup();
