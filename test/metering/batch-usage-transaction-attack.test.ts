import { describe, expect } from "vitest";
import { at, createBillingContext } from "../../src/billing/context.js";
import { recordUsageBatch, type UsageRequest } from "../../src/billing/usage.js";
import type { Sql } from "../../src/db/client.js";
import { manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

// Attacks on a metering batch's one 'usage' ledger transaction for all of its organizations
// (metering_post, migration 0040): whatever names "the debit that crossed" by its transaction id
// names the same id for every organization of the batch, so each such fact must also be keyed by
// its organization (each of these failed before that was so).
describe("a batch's one usage transaction, named by each organization's crossings", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  // One lane: a report's events for all its organizations are written in one metering batch.
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock, meteringLanes: 1 } });

  type Org = Awaited<ReturnType<TestApp["createOrg"]>>;
  let n = 0;
  /** One event of `dollars` of api requests (0.0001 USD each) for the org. */
  const spendEvent = (org: Org, dollars: number) => ({
    idempotency_key: `spend-${++n}`,
    org_id: org.id,
    timestamp: clock().toISOString(),
    product: "api",
    quantities: { requests: dollars * 10_000 },
  });
  /** One report (so one batch) spending `dollars` on each org. */
  const spendAll = async (app: TestApp, orgs: Org[], dollars: number) => {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: orgs[0]?.gatewayKey,
      body: { events: orgs.map((o) => spendEvent(o, dollars)) },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ recorded: orgs.length, rejected: 0 });
  };
  const batchTxn = async (db: { sql: Sql }, orgs: Org[]) => {
    const txns = await db.sql<{ transaction_id: string }[]>`
      select distinct transaction_id from usage_events where org_id = any(${orgs.map((o) => o.id)})`;
    expect(txns).toHaveLength(1); // the premise: one transaction for the batch
    return txns[0]?.transaction_id ?? "";
  };

  it("every organization a batch takes to zero gets its own balance.depleted event", async ({ app, db }) => {
    const orgs = [await app.createOrg("dep-a"), await app.createOrg("dep-b"), await app.createOrg("dep-c")];
    for (const o of orgs) await app.grant(o.id, "1");
    await spendAll(app, orgs, 2); // each: 1.00 → -1.00, a crossing of zero
    const txn = await batchTxn(db, orgs);
    const seen: { org: string; transaction_id: string }[] = [];
    for (const o of orgs) {
      const events = await app.call("GET", "/v1/billing/events?type=balance.depleted", { key: o.orgKey });
      expect(events.status).toBe(200);
      for (const e of events.json.data as { data: { transaction_id: string } }[])
        seen.push({ org: o.id, transaction_id: e.data.transaction_id });
    }
    // Keyed by (type, transaction id) alone (emit_event, unique (type, fact_key)), the first
    // organization of the batch would take the key and the others' events be dropped.
    expect(seen).toEqual(orgs.map((o) => ({ org: o.id, transaction_id: txn })));
  });

  it("every organization a batch takes below its auto top-up threshold gets its own crossing", async ({ app, db }) => {
    const orgs = [await app.createOrg("atu-a"), await app.createOrg("atu-b")];
    for (const o of orgs) {
      await app.grant(o.id, "100");
      const set = await app.call("PUT", "/v1/billing/auto-topup", {
        key: o.orgKey,
        body: { enabled: true, threshold: "50.00", amount: "25.00", monthly_limit: "100.00" },
      });
      expect(set.status).toBe(200);
    }
    await spendAll(app, orgs, 60); // each: 100 → 40, below 50
    // With auto_topup_crossings unique on transaction_id alone (migration 0026, until 0041), the
    // batch's second organization would get no crossing.
    const txn = await batchTxn(db, orgs);
    const crossings = await db.sql<{ org_id: string; transaction_id: string; balance: string }[]>`
      select org_id, transaction_id, balance::text from auto_topup_crossings
      where org_id = any(${orgs.map((o) => o.id)}) order by org_id`;
    expect(crossings).toEqual(
      orgs
        .map((o) => ({ org_id: o.id, transaction_id: txn, balance: "40000000000" }))
        .sort((a, b) => a.org_id.localeCompare(b.org_id)),
    );
  });

  it("each organization's low-balance alert names the batch's transaction, shown in its own list with its own amount", async ({
    app,
    db,
  }) => {
    const orgs = [await app.createOrg("low-a"), await app.createOrg("low-b"), await app.createOrg("low-c")];
    for (const o of orgs) await app.grant(o.id, "12"); // threshold 10.00
    await spendAll(app, orgs, 3); // each: 12 → 9
    const txn = await batchTxn(db, orgs);
    for (const o of orgs) {
      const alerts = await db.sql<{ transaction_id: string; balance: string }[]>`
        select transaction_id, balance::text from balance_alerts where org_id = ${o.id}`;
      expect(alerts).toEqual([{ transaction_id: txn, balance: "9000000000" }]);
      const low = await app.call("GET", "/v1/billing/events?type=balance.low", { key: o.orgKey });
      expect(low.json.data.map((e: { data: { transaction_id: string } }) => e.data.transaction_id)).toEqual([txn]);
      const list = await app.call("GET", "/v1/billing/transactions", { key: o.orgKey });
      const shown = list.json.data.find((t: { id: string }) => t.id === txn);
      expect(shown).toMatchObject({ kind: "usage", amount_nano_usd: "-3000000000", metadata: { events: 1 } });
    }
  });

  it("recordUsageBatch (seeding, tools): organizations each within the debt limit, summing past a bigint, are recorded", async ({
    app,
    db,
  }) => {
    // The API keeps a batch under 1,000 requests of at most 1,000,000 USD, but recordUsageBatch
    // prices nothing and bounds nothing: ten organizations spending 1,000,000,000 USD each (exactly
    // the debt limit, allowed one by one) sum to 1e19 nano-USD, past 2^63 - 1. One revenue entry
    // for their sum would fail the whole call ("bigint out of range"); they get one each.
    await app.metering.ready();
    const orgs: Org[] = [];
    for (let i = 0; i < 10; i++) orgs.push(await app.createOrg(`big-${i}`));
    const requests: UsageRequest[] = orgs.map((o) => ({
      orgId: o.id,
      idempotencyKey: `big-${o.id}`,
      occurredAt: clock(),
      product: "api",
      model: undefined,
      quantities: { requests: 10_000_000_000_000n }, // at 0.0001 USD: 1,000,000,000 USD
      cost: 1_000_000_000_000_000_000n,
      catalogVersion: app.metering.catalog.price(clock(), "api", undefined, { requests: 1n }).version,
      holdId: undefined,
    }));
    const res = await recordUsageBatch(at(createBillingContext({ sql: db.appSql }), clock()), { requests });
    expect(res.outcomes.map((o) => (o instanceof Error ? o.message : o.replayed))).toEqual(orgs.map(() => false));
    const revenue = await db.sql<{ n: number; total: string; net: string }[]>`
      select count(*) filter (where e.account_id = 'system:revenue')::int as n,
             coalesce(sum(e.amount) filter (where e.account_id = 'system:revenue'), 0)::text as total,
             sum(e.amount)::text as net
      from ledger_entries e
      where e.transaction_id in (select transaction_id from usage_events where org_id = any(${orgs.map((o) => o.id)}))`;
    expect(revenue).toEqual([{ n: 10, total: "10000000000000000000", net: "0" }]);
  });
});
