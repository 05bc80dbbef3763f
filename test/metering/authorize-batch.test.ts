import { describe, expect } from "vitest";
import { MAX_AUTHORIZATIONS_PER_BATCH } from "../../src/http/routes/gateway/authorize-batch.js";
import type { TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// zen-pro: input $0.0000025/token, output $0.00001/token → 1000 in + 500 out = $0.0075
const ESTIMATE = { input_tokens: 1000, output_tokens: 500 };
const COST_NANO = 7_500_000n;

describe("POST /v1/billing/authorize/batch", () => {
  it.scoped({ dbOptions: { max: 10 } });

  const batch = (app: TestApp, key: string, requests: unknown[]) =>
    app.call("POST", "/v1/billing/authorize/batch", { key, body: { requests } });
  const request = (orgId: string, extra: Record<string, unknown> = {}) => ({
    org_id: orgId,
    product: "llm",
    model: "zen-pro",
    estimate: ESTIMATE,
    ...extra,
  });

  it("answers each request in order as the single endpoint would, one refusal failing no other", async ({
    app,
    db,
  }) => {
    const rich = await app.createOrg("Rich");
    await app.grant(rich.id, "1.00");
    const poor = await app.createOrg("Poor");
    await app.grant(poor.id, "0.001");
    const res = await batch(app, rich.gatewayKey, [
      request(rich.id),
      request(poor.id),
      { org_id: rich.id, product: "llm", model: "zen-pro", estimate: { input_tokens: -1 } },
      request("org_missing"),
      request(rich.id, { model: "zen-9000" }),
      "not an object",
      request(rich.id, { estimate: { input_tokens: 2000, output_tokens: 500 } }),
    ]);
    expect(res.status).toBe(200);
    const results = res.json.results;
    expect(results.map((r: { index: number }) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(results.map((r: { status: number }) => r.status)).toEqual([201, 402, 400, 422, 422, 400, 201]);
    expect(results[0].hold).toMatchObject({
      hold_id: expect.stringMatching(/^hold_/),
      org_id: rich.id,
      amount_nano_usd: COST_NANO.toString(),
      status: "active",
      replayed: false,
    });
    // 2000 in + 500 out = $0.01: the seventh request's own estimate, not its neighbour's.
    expect(results[6].hold).toMatchObject({ org_id: rich.id, amount_nano_usd: "10000000" });
    expect(results[1].error).toMatchObject({
      type: "billing_error",
      code: "insufficient_balance",
      request_id: expect.any(String),
    });
    expect(results[1].hold).toBeUndefined();
    expect(results[2].error).toMatchObject({ code: "invalid_request", param: "estimate.input_tokens" });
    expect(results[3].error).toMatchObject({ code: "unknown_organization", param: "org_id" });
    expect(results[4].error.code).toBe("unknown_model");
    expect(results[5].error.code).toBe("invalid_request");
    const balance = (await app.call("GET", "/v1/billing/balance", { key: rich.orgKey })).json;
    expect(balance.held_nano_usd).toBe((COST_NANO + 10_000_000n).toString());
    await expectLedgerConsistent(db.sql);
  });

  it("keeps the single endpoint's idempotency: a key answers its hold, in a batch, across batches and endpoints", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const single = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: request(org.id, { idempotency_key: "k-single" }),
    });
    expect(single.status).toBe(201);
    const first = await batch(app, org.gatewayKey, [
      request(org.id, { idempotency_key: "k-1" }),
      request(org.id, { idempotency_key: "k-1" }),
      request(org.id, { idempotency_key: "k-single" }),
      request(org.id, { idempotency_key: "k-1", estimate: { input_tokens: 5 } }),
    ]);
    const [a, b, c, d] = first.json.results;
    expect([a.status, b.status, c.status, d.status]).toEqual([201, 200, 200, 409]);
    expect(b.hold).toMatchObject({ hold_id: a.hold.hold_id, replayed: true });
    expect(c.hold.hold_id).toBe(single.json.hold_id);
    expect(d.error.code).toBe("idempotency_key_reused");
    const again = await batch(app, org.gatewayKey, [request(org.id, { idempotency_key: "k-1" })]);
    expect(again.json.results[0]).toMatchObject({ status: 200, hold: { hold_id: a.hold.hold_id, replayed: true } });
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance.held_nano_usd).toBe((2n * COST_NANO).toString());
  });

  it("refuses a malformed batch as a whole in the envelope: empty, too many, not a list", async ({ app }) => {
    const org = await app.createOrg();
    const bodies = [
      { requests: [] },
      { requests: Array.from({ length: MAX_AUTHORIZATIONS_PER_BATCH + 1 }, () => request(org.id)) },
      { requests: "x" },
      { requests: [request(org.id)], extra: 1 },
      {},
    ];
    for (const body of bodies) {
      const res = await app.call("POST", "/v1/billing/authorize/batch", { key: org.gatewayKey, body });
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_request", request_id: expect.any(String) });
    }
  });

  it("takes a gateway key only", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    expect((await batch(app, org.orgKey, [request(org.id)])).json.error.code).toBe("insufficient_scope");
    const anonymous = await app.call("POST", "/v1/billing/authorize/batch", { body: { requests: [request(org.id)] } });
    expect(anonymous.status).toBe(401);
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(balance.held_nano_usd).toBe("0");
  });
});
