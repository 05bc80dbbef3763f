import { pino } from "pino";
import { describe, expect } from "vitest";
import { readCatalogFile } from "../../src/billing/catalog.js";
import { loadCatalog } from "../../src/billing/load-catalog.js";
import { expireHolds } from "../../src/billing/holds.js";
import { Metering } from "../../src/billing/metering.js";
import { createSql } from "../../src/db/client.js";
import { createApp } from "../../src/http/app.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { contextAt, testContext } from "../support/context.js";

const NOW = new Date("2026-11-15T12:00:00Z");

describe("POST /v1/billing/usage and GET /v1/billing/usage", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock: () => NOW } });

  let seq = 0;
  const event = (orgId: string, extra: Record<string, unknown> = {}) => ({
    idempotency_key: `evt-${++seq}`,
    org_id: orgId,
    timestamp: "2026-11-15T11:59:00Z",
    product: "llm",
    model: "zen-pro",
    quantities: { input_tokens: 1000, output_tokens: 500 },
    ...extra,
  });
  const report = (app: TestApp, key: string, events: unknown[]) =>
    app.call("POST", "/v1/billing/usage", { key, body: { events } });

  it("settles a hold: returns its amount to the credits and debits the actual cost in one commit", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 2000, output_tokens: 2000 } },
    });
    const res = await report(app, org.gatewayKey, [event(org.id, { hold_id: hold.json.hold_id })]);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ recorded: 1, duplicates: 0, rejected: 0 });
    expect(res.json.results[0]).toMatchObject({
      status: "recorded",
      cost_nano_usd: "7500000",
      hold_outcome: "released",
      usage_id: expect.stringMatching(/^use_/),
    });
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance).toMatchObject({ balance_nano_usd: "992500000", credits_nano_usd: "992500000", held_nano_usd: "0" });
    const [h] = await db.sql`select status from holds where id = ${hold.json.hold_id}`;
    expect(h!.status).toBe("settled");
  });

  it("a repeated key returns the first result and charges nothing", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const e = event(org.id);
    const first = await report(app, org.gatewayKey, [e]);
    const again = await report(app, org.gatewayKey, [e]);
    expect(again.json.results[0]).toMatchObject({
      status: "duplicate",
      usage_id: first.json.results[0].usage_id,
      cost_nano_usd: "7500000",
    });
    // The same key for another event is a client bug, never silently answered with the first one.
    const reused = await report(app, org.gatewayKey, [{ ...e, quantities: { input_tokens: 999999 } }]);
    expect(reused.status).toBe(200);
    expect(reused.json.results[0]).toMatchObject({
      status: "rejected",
      error: { code: "idempotency_key_reused", param: "idempotency_key" },
    });
    const inOneBatch = await report(app, org.gatewayKey, [
      event(org.id, { idempotency_key: "twice" }),
      event(org.id, { idempotency_key: "twice" }),
    ]);
    expect(inOneBatch.json.results.map((r: { status: string }) => r.status)).toEqual(["recorded", "duplicate"]);
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance.balance_nano_usd).toBe(String(1_000_000_000 - 2 * 7_500_000));
  });

  it("exactly once: the same event sent concurrently from several replicas debits once", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const replicas = [0, 1, 2, 3].map(() => {
      const sql = createSql(db.appUrl, { max: 3 });
      return {
        sql,
        app: createApp({
          sql,
          config: app.config,
          clock: () => NOW,
          logger: pino({ level: "silent" }),
          metering: new Metering(sql),
        }),
      };
    });
    const body = JSON.stringify({ events: [event(org.id, { idempotency_key: "the-one" })] });
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        Promise.resolve(
          replicas[i % 4]!.app.request("/v1/billing/usage", {
            method: "POST",
            body,
            headers: { authorization: `Bearer ${org.gatewayKey}`, "content-type": "application/json" },
          }),
        ).then((r: Response) => r.json() as Promise<{ results: { status: string; usage_id: string }[] }>),
      ),
    );
    await Promise.all(replicas.map((r) => r.sql.end()));
    const statuses = results.map((r) => r.results[0]!.status);
    expect(statuses.filter((s) => s === "recorded")).toHaveLength(1);
    expect(statuses.filter((s) => s === "duplicate")).toHaveLength(23);
    expect(new Set(results.map((r) => r.results[0]!.usage_id)).size).toBe(1);
    const [row] =
      await db.sql`select count(*)::int as n, sum(cost)::text as cost from usage_events where org_id = ${org.id}`;
    expect(row).toEqual({ n: 1, cost: "7500000" });
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd).toBe("992500000");
  });

  it("one bad event does not sink the others; each gets its own result in order", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const res = await report(app, org.gatewayKey, [
      event(org.id),
      { nonsense: true },
      event(org.id, { product: "teleport" }),
      event("org_nobody"),
      event(org.id, { hold_id: "hold_nope" }),
      event(org.id, { timestamp: "2027-06-01T00:00:00Z" }),
      event(org.id, { quantities: { input_tokens: -5 } }),
      event(org.id, { product: "api", model: undefined, quantities: { requests: 3 } }),
    ]);
    expect(res.status).toBe(200);
    const codes = res.json.results.map((r: { status: string; error?: { code: string } }) => r.error?.code ?? r.status);
    expect(codes).toEqual([
      "recorded",
      "invalid_request",
      "unknown_product",
      "unknown_organization",
      "hold_not_found",
      "invalid_request",
      "invalid_request",
      "recorded",
    ]);
    expect(res.json.results[6].error.param).toBe("quantities.input_tokens");
    expect(res.json).toMatchObject({ recorded: 2, rejected: 6 });
  });

  it("charges a cost above the hold; the balance may go negative by the overrun", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "0.01");
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 4000 } }, // $0.01
    });
    expect(hold.status).toBe(201);
    const res = await report(app, org.gatewayKey, [
      event(org.id, { hold_id: hold.json.hold_id, quantities: { input_tokens: 4000, output_tokens: 1000 } }),
    ]);
    expect(res.json.results[0].cost_nano_usd).toBe("20000000"); // $0.02
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance).toMatchObject({ balance_nano_usd: "-10000000", held_nano_usd: "0" });
    const next = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 1 } },
    });
    expect(next.status).toBe(402);
  });

  it("prices each event by the catalog version in force at its own timestamp", async ({ db }) => {
    const file = await readCatalogFile();
    const v1 = file.versions[0]!;
    const v2 = structuredClone(v1);
    v2.version = "2026-11-20";
    v2.effective_at = "2026-11-20T00:00:00Z";
    v2.products.llm!.models!["zen-pro"] = { input_tokens: "0.000005", output_tokens: "0.00002" };
    await loadCatalog(testContext(db.sql), { file: { versions: [v1, v2] } });
    const later = new Date("2026-11-25T00:00:00Z");
    const app = createTestApp({ sql: db.appSql, clock: () => later });
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          event(org.id, { timestamp: "2026-11-19T23:59:59Z" }),
          event(org.id, { timestamp: "2026-11-20T00:00:00Z" }),
        ],
      },
    });
    expect(
      res.json.results.map((r: { catalog_version: string; cost_nano_usd: string }) => [
        r.catalog_version,
        r.cost_nano_usd,
      ]),
    ).toEqual([
      ["2026-01-01", "7500000"],
      ["2026-11-20", "15000000"],
    ]);
    // A loaded version can never change: prices that applied to past usage are fixed.
    v2.products.llm!.models!["zen-pro"]!.input_tokens = "0.1";
    await expect(loadCatalog(testContext(db.sql), { file: { versions: [v1, v2] } })).rejects.toThrow(
      /already loaded with different contents/,
    );
    await expect(db.sql`update catalog_rates set rate = 0 where version = '2026-01-01'`).rejects.toThrow(/immutable/);
  });

  it("the usage report matches the ledger to the nano-USD, by product and model", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const events = [
      event(org.id, { quantities: { input_tokens: 333, output_tokens: 777 } }),
      event(org.id, { model: "zen-mini", quantities: { input_tokens: 12345, output_tokens: 1 } }),
      event(org.id, { product: "api", model: undefined, quantities: { requests: 7 } }),
      event(org.id, { product: "storage", model: undefined, quantities: { mb_hours: 1234567 } }),
      event(org.id, { product: "functions", model: undefined, quantities: { compute_seconds: 3 } }),
      event(org.id, { timestamp: "2026-10-31T23:59:59Z" }), // previous period
    ];
    expect((await report(app, org.gatewayKey, events)).json.recorded).toBe(6);
    const current = (await app.call("GET", "/v1/billing/usage?period=current", { key: org.orgKey })).json;
    expect(current.period).toMatchObject({ label: "2026-11", start: "2026-11-01T00:00:00.000Z" });
    expect(current.products.map((p: { product: string }) => p.product)).toEqual(["api", "functions", "llm", "storage"]);
    const llm = current.products.find((p: { product: string }) => p.product === "llm");
    expect(llm.models.map((m: { model: string }) => m.model)).toEqual(["zen-mini", "zen-pro"]);
    expect(llm.quantities).toEqual({ input_tokens: String(333 + 12345), output_tokens: String(777 + 1) });
    const previous = (await app.call("GET", "/v1/billing/usage?period=previous", { key: org.orgKey })).json;
    expect(previous.total_nano_usd).toBe("7500000");
    expect((await app.call("GET", "/v1/billing/usage?period=2026-10", { key: org.orgKey })).json.total_nano_usd).toBe(
      "7500000",
    );
    const [ledger] = await db.sql`
      select (-sum(e.amount))::text as spent from ledger_entries e join ledger_transactions x on x.id = e.transaction_id
      where x.kind = 'usage' and e.account_id = ${`org:${org.id}:credits`}`;
    expect(BigInt(current.total_nano_usd) + BigInt(previous.total_nano_usd)).toBe(BigInt(ledger!.spent));
    expect((await app.call("GET", "/v1/billing/usage?period=2026-13", { key: org.orgKey })).status).toBe(400);
  });

  it("the sweeper expires holds past their expiry exactly once", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 100 }, ttl_seconds: 30 },
    });
    const later = new Date(NOW.getTime() + 31_000);
    const [a, b] = await Promise.all([expireHolds(contextAt(db.sql, later)), expireHolds(contextAt(db.sql, later))]);
    expect(a + b).toBeGreaterThanOrEqual(1);
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      held_nano_usd: "0",
      balance_nano_usd: "1000000000",
      credits_nano_usd: "1000000000",
    });
    await expectLedgerConsistent(db.sql);
  });

  it("a NUL byte or an absurd quantity fails only its own event, never the batch (nor a 500)", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const res = await report(app, org.gatewayKey, [
      event(org.id),
      event(org.id, { idempotency_key: "bad\u0000key" }),
      event(org.id, { model: "zen\u0000pro" }),
      event(org.id, { quantities: { output_tokens: "1000000000000000" } }),
      event(org.id, { model: "zen-max", quantities: { output_tokens: "1000000000000" } }), // $75M: over the per-request bound
      event(org.id),
    ]);
    expect(res.status).toBe(200);
    expect(res.json.results.map((r: { status: string }) => r.status)).toEqual([
      "recorded",
      "rejected",
      "rejected",
      "rejected",
      "rejected",
      "recorded",
    ]);
    expect(res.json.results[4].error.message).toContain("1000000 USD");
    const auth = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: "org\u0000x", product: "api", estimate: { requests: 1 } },
    });
    expect(auth.status).toBe(400);
    const named = await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Null\u0000Co" } });
    expect(named.status).toBe(400);
    expect(named.json.error.code).toBe("invalid_request");
  });

  // JSON.parse keeps "__proto__" as an own key (an object literal would set the prototype instead);
  // zod's record skips such a key without a word, so the meter used to be ignored, not refused.
  it("a meter named __proto__ is refused like any bad meter name, not ignored", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const quantities = JSON.parse('{"__proto__": 1000, "input_tokens": 10}');
    const res = await report(app, org.gatewayKey, [event(org.id), event(org.id, { quantities }), event(org.id)]);
    expect(res.status).toBe(200);
    expect(res.json.results.map((r: { status: string }) => r.status)).toEqual(["recorded", "rejected", "recorded"]);
    expect(res.json.results[1].error.code).toBe("invalid_request");
    expect(res.json.results[1].error.param).toBe("quantities.__proto__");
    expect(res.json.results[1].error.message).toContain("a meter name is a lowercase letter");
  });
});
