import { describe, expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, TOPUP_PATH, topupBody } from "../../../support/fake-processor.js";
import { findLeaks } from "../../../support/processor.js";

/**
 * POST /v1/billing/topups against the fake card processor (dev/processor) through the real SDK:
 * the session, the webhook that credits, idempotency, the customer made once, bad input, faults.
 */

describe("card top-up", () => {
  it("end to end: session → paid on the processor's page → signed webhook → credited once → listed", async ({
    app,
    processor,
  }) => {
    const org = await app.createOrg();
    const res = await requestTopup(app, org.orgKey);
    expect(res.status, res.text).toBe(201);
    expect(res.json).toEqual({
      id: expect.stringMatching(/^top_/),
      url: expect.stringContaining(`${processor.url}/checkout/pay/cs_test_`),
      status: "pending",
      amount: 25,
      amount_usd: "25",
      amount_nano_usd: "25000000000",
      created_at: expect.any(String),
    });
    // The processor's customer was made for this org and linked: one of it.
    const customers = [...processor.customers.values()].filter((c) => c.metadata.org_id === org.id);
    expect(customers).toHaveLength(1);
    const session = [...processor.sessions.values()].find((s) => s.url === res.json.url);
    expect(session).toMatchObject({ mode: "payment", amount_total: 2500, currency: "usd", customer: customers[0]?.id });

    const paid = await payOnPage(res.json.url);
    expect(paid.status).toBe(303);
    await processor.idle();
    expect(processor.deliveries.filter((d) => d.status !== 200)).toEqual([]);
    expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);

    // Every event of this payment delivered again: nothing more.
    for (const e of processor.events.filter((e) => e.created >= (session?.created ?? 0))) await processor.deliver(e);
    expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);

    const list = await app.call("GET", TOPUP_PATH, { key: org.orgKey });
    expect(list.json.data).toEqual([
      expect.objectContaining({ id: res.json.id, method: "card", status: "succeeded", amount_usd: "25" }),
    ]);
    const again = await requestTopup(app, org.orgKey, topupBody(), "never-used-before");
    expect(again.status).toBe(201);
    expect(findLeaks([res.text, list.text, again.text].map((t) => t.replaceAll(processor.url, "")))).toEqual([]);
  });

  it("the same request retried with one Idempotency-Key gives one session", async ({ app, processor }) => {
    const org = await app.createOrg();
    const before = processor.sessions.size;
    const first = await requestTopup(app, org.orgKey, topupBody(), "retry-me");
    const second = await requestTopup(app, org.orgKey, topupBody(), "retry-me");
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.json).toEqual(first.json);
    // Racing duplicates too.
    const racing = await Promise.all(
      Array.from({ length: 10 }, () => requestTopup(app, org.orgKey, topupBody({ amount: "7.00" }), "race-me")),
    );
    expect(new Set(racing.map((r) => r.status))).toEqual(new Set([201, 200]));
    expect(racing.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(racing.map((r) => r.json.url)).size).toBe(1);
    expect(processor.sessions.size - before).toBe(2);
    // The same key for another top-up is refused.
    const other = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }), "retry-me");
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("idempotency_key_reused");
    // Keys are the org's own: another org with the same key gets its own session.
    const org2 = await app.createOrg("Other");
    const theirs = await requestTopup(app, org2.orgKey, topupBody(), "retry-me");
    expect(theirs.status).toBe(201);
    expect(theirs.json.id).not.toBe(first.json.id);
  });

  it("20 concurrent first top-ups of one org make one processor customer", async ({ app, processor, db }) => {
    const org = await app.createOrg();
    const results = await Promise.all(Array.from({ length: 24 }, () => requestTopup(app, org.orgKey)));
    expect(results.map((r) => r.status)).toEqual(Array(24).fill(201));
    const customers = [...processor.customers.values()].filter((c) => c.metadata.org_id === org.id);
    expect(customers).toHaveLength(1);
    const sessions = [...processor.sessions.values()].filter((s) => s.customer === customers[0]?.id);
    expect(sessions).toHaveLength(24);
    const [link] = await db.sql`select customer_id from processor_customers where org_id = ${org.id}`;
    expect(link?.customer_id).toBe(customers[0]?.id);
  });

  it("http redirect URLs are allowed on localhost outside production", async ({ app }) => {
    const org = await app.createOrg();
    const res = await requestTopup(
      app,
      org.orgKey,
      topupBody({ success_url: "http://localhost:3000/ok", cancel_url: "http://127.0.0.1:3000/no", currency: "USD" }),
    );
    expect(res.status, res.text).toBe(201);
  });

  it.for([
    { name: "below the minimum", body: { amount: "4.99" }, param: "amount" },
    { name: "zero", body: { amount: "0" }, param: "amount" },
    { name: "negative", body: { amount: "-5.00" }, param: "amount" },
    { name: "above the maximum", body: { amount: "10000.01" }, param: "amount" },
    { name: "fractions of a cent", body: { amount: "25.001" }, param: "amount" },
    { name: "not a decimal", body: { amount: "twenty" }, param: "amount" },
    { name: "exponent", body: { amount: "1e3" }, param: "amount" },
    { name: "a number, not a string", body: { amount: 25 }, param: "amount" },
    { name: "with a currency sign", body: { amount: "$25.00" }, param: "amount" },
    { name: "another currency", body: { currency: "EUR" }, param: "currency" },
    { name: "another currency in the amount", body: { amount: "25.00 EUR" }, param: "amount" },
    { name: "http success_url", body: { success_url: "http://example.com/ok" }, param: "success_url" },
    { name: "http cancel_url", body: { cancel_url: "http://example.com/no" }, param: "cancel_url" },
    { name: "javascript: URL", body: { success_url: "javascript:alert(1)" }, param: "success_url" },
    { name: "relative URL", body: { cancel_url: "/billing" }, param: "cancel_url" },
    { name: "missing success_url", body: { success_url: undefined }, param: "success_url" },
    { name: "unknown field", body: { customer: "cus_x" }, param: undefined },
  ])("400 for $name", async ({ body, param }, { app, processor }) => {
    const org = await app.createOrg();
    const sessions = processor.sessions.size;
    const res = await requestTopup(app, org.orgKey, topupBody(body));
    expect(res.status, res.text).toBe(400);
    expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request" });
    if (param) expect(res.json.error.message + (res.json.error.param ?? "")).toContain(param);
    expect(processor.sessions.size).toBe(sessions);
  });

  it("requires an Idempotency-Key and an org key", async ({ app }) => {
    const org = await app.createOrg();
    const noKey = await app.call("POST", TOPUP_PATH, { key: org.orgKey, body: topupBody() });
    expect(noKey.status).toBe(400);
    expect(noKey.json.error.code).toBe("idempotency_key_required");
    const anonymous = await app.call("POST", TOPUP_PATH, { headers: { "idempotency-key": "k" }, body: topupBody() });
    expect(anonymous.status).toBe(401);
  });
});

describe("processor faults", () => {
  it.for([
    { name: "5xx", fault: { kind: "5xx" as const, status: 500 } },
    { name: "unreachable", fault: { kind: "unreachable" as const } },
  ])(
    "processor $name → 503 processor_unavailable, nothing recorded, retry-safe",
    async ({ fault }, { app, processor }) => {
      const org = await app.createOrg();
      processor.fail({ ...fault, match: /checkout\/sessions/ });
      let res: Awaited<ReturnType<typeof requestTopup>>;
      try {
        res = await requestTopup(app, org.orgKey, topupBody(), `down-${fault.kind}`);
      } finally {
        processor.clearFaults();
      }
      expect(res.status, res.text).toBe(503);
      expect(res.json.error).toMatchObject({ code: "processor_unavailable", type: "api_error" });
      expect((await app.call("GET", TOPUP_PATH, { key: org.orgKey })).json.data).toEqual([]);
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      const retry = await requestTopup(app, org.orgKey, topupBody(), `down-${fault.kind}`);
      expect(retry.status).toBe(201);
      expect((await app.call("GET", TOPUP_PATH, { key: org.orgKey })).json.data).toHaveLength(1);
    },
  );

  it("a session made but its answer lost: the retry gets that same session", async ({ app, processor }) => {
    const org = await app.createOrg();
    await requestTopup(app, org.orgKey); // the customer exists already
    const before = processor.sessions.size;
    processor.fail({ kind: "5xx", status: 502, match: /checkout\/sessions/, after: true, count: 1 });
    const lost = await requestTopup(app, org.orgKey, topupBody(), "lost-answer");
    expect(lost.status).toBe(503);
    expect(processor.sessions.size).toBe(before + 1);
    const retry = await requestTopup(app, org.orgKey, topupBody(), "lost-answer");
    expect(retry.status).toBe(201);
    expect(processor.sessions.size).toBe(before + 1);
  });

  it("503 not_configured without a processor key", async ({ db }) => {
    const { createPaymentsTestApp } = await import("../../../support/processor.js");
    const bare = createPaymentsTestApp({ sql: db.appSql });
    const org = await bare.createOrg();
    const res = await requestTopup(bare, org.orgKey);
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe("not_configured");
  });
});
