import { describe, expect } from "vitest";
import { batchOrgs, callMeteringBatch } from "../../../../src/billing/group-commit.js";
import { prepareUsage } from "../../../../src/billing/usage.js";
import { newId } from "../../../../src/ids.js";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/transactions: a usage report's one ledger transaction for its organizations", () => {
  const clock = manualClock();
  // One lane: the report's events for both organizations are written in one metering batch.
  it.scoped({ appOptions: { clock, meteringLanes: 1 } });

  const event = (orgId: string, key: string) => ({
    idempotency_key: key,
    org_id: orgId,
    timestamp: clock().toISOString(),
    product: "llm",
    model: "zen-pro",
    quantities: { input_tokens: 1000, output_tokens: 500 },
  });

  it("shows each organization its own share: its amount and its events, between its own transactions, paged by the cursor", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(a.id, "1", "a-before");
    await app.grant(b.id, "1", "b-before");
    const events = [event(a.id, "a1"), event(b.id, "b1"), event(a.id, "a2"), event(b.id, "b2"), event(b.id, "b3")];
    const report = await app.call("POST", "/v1/billing/usage", { key: a.gatewayKey, body: { events } });
    expect(report.json).toMatchObject({ recorded: 5, rejected: 0 });
    await app.grant(a.id, "2", "a-after");

    // One transaction for the batch: an entry per organization and one to revenue for both.
    const txns = await db.sql<{ transaction_id: string }[]>`
      select distinct transaction_id from usage_events where org_id in (${a.id}, ${b.id})`;
    expect(txns).toHaveLength(1);
    const txn = txns[0]!.transaction_id;
    const entries = await db.sql<{ account_id: string; amount: string }[]>`
      select e.account_id, e.amount::text from ledger_entries e where e.transaction_id = ${txn} order by e.amount`;
    const cost = -BigInt(entries.find((e) => e.account_id === `org:${a.id}:credits`)!.amount) / 2n; // per event
    expect(entries).toEqual([
      { account_id: `org:${b.id}:credits`, amount: String(-3n * cost) },
      { account_id: `org:${a.id}:credits`, amount: String(-2n * cost) },
      { account_id: "system:revenue", amount: String(5n * cost) },
    ]);

    const list = async (key: string, cursor?: string) =>
      (await app.call("GET", `/v1/billing/transactions?limit=1${cursor ? `&cursor=${cursor}` : ""}`, { key })).json;
    const all = async (key: string) => {
      const seen: { id: string; kind: string; amount_nano_usd: string; metadata: unknown }[] = [];
      let page = await list(key);
      for (;;) {
        seen.push(...page.data);
        if (!page.has_more) return seen;
        page = await list(key, page.next_cursor);
      }
    };
    const shape = (t: { id: string; kind: string; amount_nano_usd: string; metadata: unknown }) => ({
      usage: t.id === txn,
      kind: t.kind,
      amount: t.amount_nano_usd,
      metadata: t.kind === "usage" ? t.metadata : undefined,
    });
    expect((await all(a.orgKey)).map(shape)).toEqual([
      { usage: false, kind: "grant", amount: "2000000000", metadata: undefined },
      { usage: true, kind: "usage", amount: String(-2n * cost), metadata: { events: 2 } },
      { usage: false, kind: "grant", amount: "1000000000", metadata: undefined },
    ]);
    expect((await all(b.orgKey)).map(shape)).toEqual([
      { usage: true, kind: "usage", amount: String(-3n * cost), metadata: { events: 3 } },
      { usage: false, kind: "grant", amount: "1000000000", metadata: undefined },
    ]);
    // The export reads the same list, oldest first.
    const start = new Date(clock().getTime() - 86_400_000).toISOString();
    const end = new Date(clock().getTime() + 86_400_000).toISOString();
    const csv = await app.call("GET", `/v1/billing/exports/transactions.csv?start=${start}&end=${end}`, {
      key: b.orgKey,
    });
    expect(csv.status).toBe(200);
    expect(csv.text.split("\n").filter((l) => l.includes(txn))).toHaveLength(1);
  });

  it("an older replica naming a usage transaction per organization still gets one each, each listed to its org", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(a.id, "1");
    await app.grant(b.id, "1");
    const requests = [a.id, b.id].map((orgId) => ({
      orgId,
      idempotencyKey: `old-${orgId}`,
      occurredAt: clock(),
      product: "api",
      model: undefined,
      quantities: { requests: 1n },
      cost: 100_000n,
      catalogVersion: app.metering.catalog.price(clock(), "api", undefined, { requests: 1n }).version,
      holdId: undefined,
    }));
    const { orgs, index } = batchOrgs(requests.map((r) => r.orgId));
    const u = prepareUsage(requests, index);
    const res = await callMeteringBatch(
      db.appSql,
      clock(),
      orgs.map((org_id) => ({ org_id, usage_txn: newId("txn"), alert_id: null })),
      u.input,
      [],
    );
    expect(res.usage_outcomes).toEqual(["recorded", "recorded"]);
    for (const org of [a, b]) {
      const [usage, ...rest] = (await app.call("GET", "/v1/billing/transactions", { key: org.orgKey })).json.data;
      expect(usage).toMatchObject({ kind: "usage", amount_nano_usd: "-100000", metadata: { events: 1 } });
      expect(rest.map((t: { kind: string }) => t.kind)).toEqual(["grant"]);
      const [entries] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from ledger_entries where transaction_id = ${usage.id}`;
      expect(entries!.n).toBe(2);
    }
  });
});
