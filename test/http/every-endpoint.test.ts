import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/**
 * Walks every operation in the OpenAPI document, so a new endpoint is covered the day it is
 * added: bad auth, bad JSON and wrong types get a 4xx in the envelope, never a 500, and org A's
 * key never sees org B's data.
 */
type Op = { method: string; path: string; secured: boolean; tags: string[]; hasBody: boolean };

describe("every endpoint", () => {
  let db: TestDatabase;
  let t: TestApp;
  let ops: Op[];
  let a: Awaited<ReturnType<TestApp["createOrg"]>>;
  let b: Awaited<ReturnType<TestApp["createOrg"]>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.sql });
    const doc = (await t.call("GET", "/v1/openapi.json")).json;
    ops = Object.entries(
      doc.paths as Record<string, Record<string, { security?: unknown[]; tags?: string[]; requestBody?: unknown }>>,
    ).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        secured: (op.security?.length ?? 0) > 0,
        tags: op.tags ?? [],
        hasBody: op.requestBody !== undefined,
      })),
    );
    a = await t.createOrg("Org A");
    b = await t.createOrg("Org B");
    await t.grant(b.id, "777.777", "b-secret");
  });
  afterAll(() => db.drop());

  // This app has no chain configured: HUSD endpoints answer 503 not_configured, a deliberate
  // answer in the envelope rather than a crash (test/deposits covers them against anvil).
  const notConfigured = (res: { status: number; json: any }) =>
    res.status === 503 && res.json?.error?.code === "not_configured";
  const keyFor = (op: Op) =>
    op.tags.includes("admin") ? TEST_ADMIN_KEY : op.tags.includes("gateway") ? a.gatewayKey : a.orgKey;
  const fill = (path: string, id: string) => path.replace(/\{[^}]+\}/g, id);

  function expectEnvelope(res: { status: number; json: any; text: string }, label: string) {
    expect(res.status, `${label}: ${res.text}`).toBeGreaterThanOrEqual(400);
    expect(res.status, `${label}: ${res.text}`).toBeLessThan(500);
    expect(res.json?.error, label).toMatchObject({
      type: expect.any(String),
      code: expect.any(String),
      message: expect.any(String),
      request_id: expect.any(String),
    });
  }

  it("the document lists the endpoints", () => {
    expect(ops.length).toBeGreaterThanOrEqual(7);
  });

  it("without a key: 401 on every secured endpoint", async () => {
    for (const op of ops.filter((o) => o.secured)) {
      const res = await t.call(op.method, fill(op.path, a.id), op.hasBody ? { body: {} } : {});
      expectEnvelope(res, `${op.method} ${op.path}`);
      expect(res.status, `${op.method} ${op.path}`).toBe(401);
    }
  });

  it("without a key: no 401 or 403 where the document says no key is needed (security: [])", async () => {
    const refused: string[] = [];
    for (const op of ops.filter((o) => !o.secured)) {
      const res = await t.call(op.method, fill(op.path, a.id), op.hasBody ? { body: {} } : {});
      if (res.status === 401 || res.status === 403) refused.push(`${op.method} ${op.path}: ${res.status}`);
    }
    expect(ops.some((o) => !o.secured)).toBe(true);
    expect(refused).toEqual([]);
  });

  it("with a key of another scope: 403", async () => {
    for (const op of ops.filter((o) => o.secured)) {
      const wrong = op.tags.includes("admin") ? a.orgKey : TEST_ADMIN_KEY;
      const res = await t.call(op.method, fill(op.path, a.id), { key: wrong, ...(op.hasBody ? { body: {} } : {}) });
      expectEnvelope(res, `${op.method} ${op.path}`);
      expect(res.status, `${op.method} ${op.path}`).toBe(403);
    }
  });

  it("malformed JSON, wrong types and junk bodies: 400 in the envelope, never a 500", async () => {
    const bodies = [
      "{",
      "[]",
      '"text"',
      "null",
      '{"amount":{},"name":[],"scope":7,"events":"x","low_balance_threshold":{}}',
      "{}",
    ];
    for (const op of ops.filter((o) => o.hasBody)) {
      for (const rawBody of bodies) {
        const res = await t.call(op.method, fill(op.path, a.id), {
          key: keyFor(op),
          rawBody,
          headers: { "content-type": "application/json", "idempotency-key": `junk-${Math.random()}` },
        });
        // An empty object is a complete request for some endpoints (e.g. close every cycle).
        if (rawBody === "{}" && res.status < 300) continue;
        expectEnvelope(res, `${op.method} ${op.path} ${rawBody}`);
        expect([400, 404, 422], `${op.method} ${op.path} ${rawBody}: ${res.text}`).toContain(res.status);
        // Routes without an API key (signed webhooks) check the signature of the raw bytes before parsing anything.
        if (rawBody === "{") expect(res.json.error.code).toBe(op.secured ? "invalid_json" : "invalid_signature");
      }
    }
  });

  it("absurd path parameters and query strings are 4xx, never a 500", async () => {
    const junk = ["x".repeat(500), "%00", "'; drop table organizations; --", "org_" + "9".repeat(40)];
    for (const op of ops.filter((o) => o.path.includes("{"))) {
      for (const id of junk) {
        const res = await t.call(op.method, fill(op.path, encodeURIComponent(id)), {
          key: keyFor(op),
          ...(op.hasBody ? { body: {} } : {}),
        });
        expectEnvelope(res, `${op.method} ${op.path} ${id}`);
      }
    }
    for (const op of ops.filter((o) => o.method === "GET" && !o.path.includes("{") && o.secured)) {
      const res = await t.call("GET", `${op.path}?limit=-5&cursor=%ZZ&period=nope&limit=abc`, { key: keyFor(op) });
      if (notConfigured(res)) continue;
      expect(res.status, `${op.path}: ${res.text}`).toBeLessThan(500);
    }
  });

  it("org A's keys never see org B's data on any endpoint, whatever ids they put in the path", async () => {
    for (const op of ops.filter((o) => o.secured && !o.tags.includes("admin"))) {
      for (const key of [a.orgKey, a.gatewayKey]) {
        const res = await t.call(op.method, fill(op.path, b.id), { key, ...(op.hasBody ? { body: {} } : {}) });
        if (!notConfigured(res)) expect(res.status, `${op.method} ${op.path}`).toBeLessThan(500);
        expect(res.text, `${op.method} ${op.path}`).not.toContain("777.777");
        expect(res.text, `${op.method} ${op.path}`).not.toContain("777777000000");
        expect(res.text, `${op.method} ${op.path}`).not.toContain("Org B");
        // An error may echo the id the caller itself sent; anywhere else B's id must not appear.
        if (!op.path.includes("{")) expect(res.text, `${op.method} ${op.path}`).not.toContain(b.id);
      }
    }
  });

  it("unknown routes are a 404 in the envelope", async () => {
    const res = await t.call("GET", "/v1/nope");
    expectEnvelope(res, "GET /v1/nope");
    expect(res.json.error.code).toBe("not_found");
  });
});
