import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest } from "../support/fixtures.js";
import { type DocumentedOperation, documentedOperations } from "../support/openapi.js";

/**
 * Walks every operation in the OpenAPI document, so a new endpoint is covered the day it is
 * added: bad auth, bad JSON and wrong types get a 4xx in the envelope, never a 500, and org A's
 * key never sees org B's data. One test per operation and case, so one failure hides no other.
 */
const ops = documentedOperations();
const secured = ops.filter((o) => o.secured);
const withoutKey = ops.filter((o) => !o.secured);
const JUNK_BODIES = [
  "{",
  "[]",
  '"text"',
  "null",
  '{"amount":{},"name":[],"scope":7,"events":"x","low_balance_threshold":{}}',
  "{}",
];
const JUNK_IDS = ["x".repeat(500), "%00", "'; drop table organizations; --", `org_${"9".repeat(40)}`];

type Org = Awaited<ReturnType<TestApp["createOrg"]>>;
type Reply = Awaited<ReturnType<TestApp["call"]>>;

/** `orgs`: org A, whose keys make the requests, and org B, whose data A must never see. */
const it = appTest.extend<{ orgs: { a: Org; b: Org } }>({
  orgs: [
    async ({ app }, use) => {
      const a = await app.createOrg("Org A");
      const b = await app.createOrg("Org B");
      await app.grant(b.id, "777.777", "b-secret");
      await use({ a, b });
    },
    { scope: "file" },
  ],
});

describe("every endpoint", () => {
  // This app has no chain configured: HUSD endpoints answer 503 not_configured, a deliberate
  // answer in the envelope rather than a crash (test/deposits covers them against anvil).
  const notConfigured = (res: Reply) => res.status === 503 && res.json?.error?.code === "not_configured";
  const keyFor = (op: DocumentedOperation, a: Org) =>
    op.tags.includes("admin") ? TEST_ADMIN_KEY : op.tags.includes("gateway") ? a.gatewayKey : a.orgKey;
  const fill = (path: string, id: string) => path.replace(/\{[^}]+\}/g, id);

  function expectEnvelope(res: Reply, label: string) {
    expect(res.status, `${label}: ${res.text}`).toBeGreaterThanOrEqual(400);
    expect(res.status, `${label}: ${res.text}`).toBeLessThan(500);
    expect(res.json?.error, label).toMatchObject({
      type: expect.any(String),
      code: expect.any(String),
      message: expect.any(String),
      request_id: expect.any(String),
    });
  }

  it("the document lists the endpoints, and the served one lists the same", async ({ app }) => {
    expect(ops.length).toBeGreaterThanOrEqual(26);
    expect(withoutKey.length).toBeGreaterThan(0);
    const served = (await app.call("GET", "/v1/openapi.json")).json as { paths: Record<string, object> };
    const servedOps = Object.entries(served.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(servedOps.sort()).toEqual(ops.map((o) => `${o.method} ${o.path}`).sort());
  });

  it.for(secured)("without a key: $method $path is 401", async (op, { app, orgs }) => {
    const res = await app.call(op.method, fill(op.path, orgs.a.id), op.hasBody ? { body: {} } : {});
    expectEnvelope(res, `${op.method} ${op.path}`);
    expect(res.status).toBe(401);
  });

  it.for(withoutKey)(
    "without a key: $method $path (security: []) is neither 401 nor 403",
    async (op, { app, orgs }) => {
      const res = await app.call(op.method, fill(op.path, orgs.a.id), op.hasBody ? { body: {} } : {});
      expect([401, 403]).not.toContain(res.status);
    },
  );

  it.for(secured)("with a key of another scope: $method $path is 403", async (op, { app, orgs }) => {
    const wrong = op.tags.includes("admin") ? orgs.a.orgKey : TEST_ADMIN_KEY;
    const res = await app.call(op.method, fill(op.path, orgs.a.id), {
      key: wrong,
      ...(op.hasBody ? { body: {} } : {}),
    });
    expectEnvelope(res, `${op.method} ${op.path}`);
    expect(res.status).toBe(403);
  });

  it.for(ops.filter((o) => o.hasBody).flatMap((op) => JUNK_BODIES.map((rawBody) => ({ ...op, rawBody }))))(
    "$method $path with the body $rawBody: 400 in the envelope, never a 500",
    async (op, { app, orgs }) => {
      const res = await app.call(op.method, fill(op.path, orgs.a.id), {
        key: keyFor(op, orgs.a),
        rawBody: op.rawBody,
        headers: { "content-type": "application/json", "idempotency-key": `junk-${Math.random()}` },
      });
      // An empty object is a complete request for some endpoints (e.g. close every cycle).
      if (op.rawBody === "{}" && res.status < 300) return;
      expectEnvelope(res, `${op.method} ${op.path} ${op.rawBody}`);
      expect([400, 404, 422], res.text).toContain(res.status);
      // Routes without an API key (signed webhooks) check the signature of the raw bytes before parsing anything.
      if (op.rawBody === "{") expect(res.json.error.code).toBe(op.secured ? "invalid_json" : "invalid_signature");
    },
  );

  it.for(ops.filter((o) => o.path.includes("{")).flatMap((op) => JUNK_IDS.map((id) => ({ ...op, id }))))(
    "$method $path with the id $id: 4xx in the envelope, never a 500",
    async (op, { app, orgs }) => {
      const res = await app.call(op.method, fill(op.path, encodeURIComponent(op.id)), {
        key: keyFor(op, orgs.a),
        ...(op.hasBody ? { body: {} } : {}),
      });
      expectEnvelope(res, `${op.method} ${op.path} ${op.id}`);
    },
  );

  it.for(ops.filter((o) => o.method === "GET" && !o.path.includes("{") && o.secured))(
    "GET $path with absurd query parameters: never a 500",
    async (op, { app, orgs }) => {
      const res = await app.call("GET", `${op.path}?limit=-5&cursor=%ZZ&period=nope&limit=abc`, {
        key: keyFor(op, orgs.a),
      });
      if (notConfigured(res)) return;
      expect(res.status, res.text).toBeLessThan(500);
    },
  );

  it.for(
    secured
      .filter((o) => !o.tags.includes("admin"))
      .flatMap((op) => (["orgKey", "gatewayKey"] as const).map((key) => ({ ...op, key }))),
  )(
    "org A's $key never sees org B's data on $method $path, whatever ids it puts in the path",
    async (op, { app, orgs }) => {
      const res = await app.call(op.method, fill(op.path, orgs.b.id), {
        key: orgs.a[op.key],
        ...(op.hasBody ? { body: {} } : {}),
      });
      if (!notConfigured(res)) expect(res.status).toBeLessThan(500);
      expect(res.text).not.toContain("777.777");
      expect(res.text).not.toContain("777777000000");
      expect(res.text).not.toContain("Org B");
      // An error may echo the id the caller itself sent; anywhere else B's id must not appear.
      if (!op.path.includes("{")) expect(res.text).not.toContain(orgs.b.id);
    },
  );

  it("unknown routes are a 404 in the envelope", async ({ app }) => {
    const res = await app.call("GET", "/v1/nope");
    expectEnvelope(res, "GET /v1/nope");
    expect(res.json.error.code).toBe("not_found");
  });
});
