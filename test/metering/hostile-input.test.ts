import { describe, expect } from "vitest";
import type { TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// Breaks found by attacking the running API (two replicas and a worker), kept as tests.
describe("hostile input on the metering path", () => {
  it.scoped({ dbOptions: { max: 10 } });

  const now = () => new Date().toISOString();
  const usage = (app: TestApp, key: string, events: unknown[]) =>
    app.call("POST", "/v1/billing/usage", { key, body: { events } });

  it("a lone surrogate in a key, hold or org id is that event's 400, never a 500 of the whole report", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const good = {
      idempotency_key: "fine",
      org_id: org.id,
      timestamp: now(),
      product: "api",
      quantities: { requests: 1 },
    };
    const res = await usage(app, org.gatewayKey, [
      good,
      { ...good, idempotency_key: "bad\ud800" },
      { ...good, idempotency_key: "k2", hold_id: "\udc00x" },
      { ...good, idempotency_key: "k3", org_id: "org_\ud800" },
    ]);
    expect(res.status).toBe(200);
    expect(
      res.json.results.map((r: { status: string; error?: { code: string } }) => r.error?.code ?? r.status),
    ).toEqual(["recorded", "invalid_request", "invalid_request", "invalid_request"]);
    const auth = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 1 }, idempotency_key: "\ud800" },
    });
    expect(auth.status).toBe(400);
    expect(auth.json.error).toMatchObject({ code: "invalid_request", param: "idempotency_key" });
  });

  it("usage can never take an org past the debt the ledger can hold: refused per event, the org keeps working", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    // zen-max output tokens: 13e9 of them cost $975,000, under the per-event cap.
    const big = (k: string) => ({
      idempotency_key: k,
      org_id: org.id,
      timestamp: now(),
      product: "llm",
      model: "zen-max",
      quantities: { output_tokens: 13_000_000_000 },
    });
    const first = await usage(
      app,
      org.gatewayKey,
      Array.from({ length: 1000 }, (_, k) => big(`a${k}`)),
    );
    expect(first.json.recorded).toBe(1000); // -$974,999,999
    const second = await usage(
      app,
      org.gatewayKey,
      Array.from({ length: 1000 }, (_, k) => big(`b${k}`)),
    );
    expect(second.status).toBe(200);
    // $1e9 of debt at most: 25 more events fit (-$999,374,999), the 26th would not.
    expect(second.json.recorded).toBe(25);
    expect(second.json.results[25].error).toMatchObject({ code: "debt_limit_exceeded" });
    const small = await usage(app, org.gatewayKey, [
      { idempotency_key: "small", org_id: org.id, timestamp: now(), product: "api", quantities: { requests: 1 } },
    ]);
    expect(small.json.results[0].status).toBe("recorded");
    const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.credits_nano_usd).toBe(
      (1_000_000_000n - 1025n * 975_000n * 1_000_000_000n - 100_000n).toString(),
    );
    await expectLedgerConsistent(db.sql);
  });
});
