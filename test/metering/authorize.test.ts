import { pino } from "pino";
import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import { createSql } from "../../src/db/client.js";
import { createApp } from "../../src/http/app.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// zen-pro: input $0.0000025/token, output $0.00001/token → 1000 in + 500 out = $0.0075
const ESTIMATE = { input_tokens: 1000, output_tokens: 500 };
const COST_NANO = 7_500_000n;

describe("POST /v1/billing/authorize", () => {
  it.scoped({ dbOptions: { max: 10 } });

  const authorize = (app: TestApp, key: string, body: Record<string, unknown>) =>
    app.call("POST", "/v1/billing/authorize", { key, body });

  it("holds the priced estimate and moves it from credits to held", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const res = await authorize(app, org.gatewayKey, {
      org_id: org.id,
      product: "llm",
      model: "zen-pro",
      estimate: ESTIMATE,
    });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      hold_id: expect.stringMatching(/^hold_/),
      amount: 0.0075,
      amount_nano_usd: COST_NANO.toString(),
      catalog_version: "2026-01-01",
      replayed: false,
    });
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance).toMatchObject({ balance: 1, credits: 0.9925, held_nano_usd: COST_NANO.toString() });
  });

  it("402 insufficient_balance in the envelope when the available credits cannot cover it", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "0.01");
    expect(
      (await authorize(app, org.gatewayKey, { org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE }))
        .status,
    ).toBe(201);
    const res = await authorize(app, org.gatewayKey, {
      org_id: org.id,
      product: "llm",
      model: "zen-pro",
      estimate: ESTIMATE,
    });
    expect(res.status).toBe(402);
    expect(res.json.error).toMatchObject({
      type: "billing_error",
      code: "insufficient_balance",
      request_id: expect.any(String),
    });
    expect(res.json.error.message).toContain("0.0025"); // what is left
  });

  it("unknown org, product or model is a 4xx, not a 402", async ({ app }) => {
    const org = await app.createOrg();
    const cases = [
      [{ org_id: "org_missing", product: "llm", model: "zen-pro", estimate: ESTIMATE }, "unknown_organization"],
      [{ org_id: org.id, product: "teleport", estimate: { requests: 1 } }, "unknown_product"],
      [{ org_id: org.id, product: "llm", model: "zen-9000", estimate: ESTIMATE }, "unknown_model"],
      [{ org_id: org.id, product: "llm", estimate: ESTIMATE }, "unknown_model"],
      [{ org_id: org.id, product: "api", model: "zen-pro", estimate: { requests: 1 } }, "unknown_model"],
      [{ org_id: org.id, product: "api", estimate: { tokens: 1 } }, "invalid_request"],
    ] as const;
    for (const [body, code] of cases) {
      const res = await authorize(app, org.gatewayKey, body);
      expect(res.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.status).not.toBe(402);
      expect(res.json.error.code, JSON.stringify(body)).toBe(code);
    }
  });

  // Negative, fractional, absurd and non-numeric estimates.
  it.for<Record<string, unknown>>([
    { input_tokens: -1 },
    { input_tokens: 1.5 },
    { input_tokens: "1e9" },
    { input_tokens: 1e300 },
    { input_tokens: "99999999999999999999" },
    {},
    { input_tokens: null },
    // Valid to the schema, refused in pricing: the param still names the estimate.
    { input_tokens: 1_000_000_000_000 },
    { input_tokens: 1, reasoning_crystals: 1 },
  ])("refuses the estimate %j", async (estimate, { app }) => {
    const org = await app.createOrg();
    const res = await authorize(app, org.gatewayKey, { org_id: org.id, product: "llm", model: "zen-pro", estimate });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toMatch(/^estimate/);
  });

  it("an estimate with a meter named __proto__ is refused, not priced without it", async ({ app }) => {
    const org = await app.createOrg();
    const estimate = JSON.parse('{"__proto__": 1000, "input_tokens": 10}');
    const res = await authorize(app, org.gatewayKey, { org_id: org.id, product: "llm", model: "zen-pro", estimate });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_request");
    expect(res.json.error.param).toBe("estimate.__proto__");
    expect(res.json.error.message).toContain("a meter name is a lowercase letter");
    const batch = await app.call("POST", "/v1/billing/authorize/batch", {
      key: org.gatewayKey,
      body: { requests: [{ org_id: org.id, product: "llm", model: "zen-pro", estimate }] },
    });
    expect(batch.status).toBe(200);
    expect(batch.json.results[0].status).toBe(400);
    expect(batch.json.results[0].error.param).toBe("estimate.__proto__");
    // Any other bad name is answered with the same rule, not zod's "Invalid key in record".
    const upper = await authorize(app, org.gatewayKey, {
      org_id: org.id,
      product: "llm",
      model: "zen-pro",
      estimate: { Input_tokens: 10 },
    });
    expect(upper.status).toBe(400);
    expect(upper.json.error.param).toBe("estimate.Input_tokens");
    expect(upper.json.error.message).toBe(
      "estimate.Input_tokens: a meter name is a lowercase letter, then up to 40 lowercase letters, digits or _ (e.g. input_tokens)",
    );
  });

  it("the same idempotency key returns the same hold and holds once", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const body = { org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE, idempotency_key: "req-1" };
    const results = await Promise.all(Array.from({ length: 5 }, () => authorize(app, org.gatewayKey, body)));
    expect(new Set(results.map((r) => r.json.hold_id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance.held_nano_usd).toBe(COST_NANO.toString());
  });

  it("zero overspend: N racing authorizations from several replicas against a balance that covers exactly K", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const K = 13;
    const N = 60;
    await app.grant(
      org.id,
      ((COST_NANO * BigInt(K)) / 1_000_000_000n).toString() +
        "." +
        ((COST_NANO * BigInt(K)) % 1_000_000_000n).toString().padStart(9, "0"),
    );
    // Three independent app instances, each with its own connection pool: as three API replicas.
    const replicas = await Promise.all(
      [0, 1, 2].map(async () => {
        const sql = createSql(db.appUrl, { max: 4 });
        const metering = new Metering(sql);
        const replica = createApp({
          sql,
          config: app.config,
          clock: () => new Date(),
          logger: pino({ level: "silent" }),
          metering,
        });
        return { sql, app: replica };
      }),
    );
    const body = JSON.stringify({ org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE });
    const statuses = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        Promise.resolve(
          replicas[i % 3]!.app.request("/v1/billing/authorize", {
            method: "POST",
            body,
            headers: { authorization: `Bearer ${org.gatewayKey}`, "content-type": "application/json" },
          }),
        ).then((r: Response) => r.status),
      ),
    );
    await Promise.all(replicas.map((r) => r.sql.end()));
    expect(statuses.filter((s) => s === 201)).toHaveLength(K);
    expect(statuses.filter((s) => s === 402)).toHaveLength(N - K);
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance.credits_nano_usd).toBe("0");
    expect(BigInt(balance.held_nano_usd)).toBe(COST_NANO * BigInt(K));
    await expectLedgerConsistent(db.sql);
  });

  it("an expired hold gives its amount back before the next authorization is decided", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "0.0075");
    let now = new Date("2026-11-20T00:00:00Z");
    const timed = createTestApp({ sql: db.appSql, clock: () => now });
    const body = { org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE, ttl_seconds: 60 };
    expect((await timed.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body })).status).toBe(201);
    expect((await timed.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body })).status).toBe(402);
    now = new Date(now.getTime() + 61_000);
    expect((await timed.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body })).status).toBe(201);
    const holds = await db.sql`select status from holds where org_id = ${org.id} order by created_at`;
    expect(holds.map((h) => h.status)).toEqual(["expired", "active"]);
  });

  it("only gateway keys may authorize", async ({ app }) => {
    const org = await app.createOrg();
    const res = await authorize(app, org.orgKey, {
      org_id: org.id,
      product: "llm",
      model: "zen-pro",
      estimate: ESTIMATE,
    });
    expect(res.status).toBe(403);
    expect(
      (await authorize(app, TEST_ADMIN_KEY, { org_id: org.id, product: "api", estimate: { requests: 1 } })).status,
    ).toBe(403);
  });
});
