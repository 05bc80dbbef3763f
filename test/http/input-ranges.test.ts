import { describe, expect } from "vitest";
import { authenticate, KeyCache } from "../../src/billing/api-keys.js";
import { loadConfig } from "../../src/config.js";
import type { Sql } from "../../src/db/client.js";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { appTest } from "../support/fixtures.js";

/** `org`: one organization with its keys, shared by the file's tests (none changes it). */
const it = appTest.extend<{ org: Awaited<ReturnType<TestApp["createOrg"]>> }>({
  org: [async ({ app }, use) => use(await app.createOrg()), { scope: "file" }],
});

/**
 * Input that is well formed but outside what the database can hold is the client's 400, naming
 * the field, never a 500; and the bootstrap admin key accepts exactly what authentication does.
 */
describe("values at the edge of their range", () => {
  const cursor = (text: string) => Buffer.from(text).toString("base64url");
  it.for([
    ["beyond bigint", cursor("s:9999999999999999999")],
    ["just beyond bigint", cursor("s:9223372036854775808")],
    ["not ours", "bm9wZQ"],
  ])("a transactions cursor %s is 400 invalid_request naming cursor", async ([, value], { app, org }) => {
    const res = await app.call("GET", `/v1/billing/transactions?cursor=${value}`, { key: org.orgKey });
    expect(res.status, res.text).toBe(400);
    expect(res.json.error).toMatchObject({ code: "invalid_request", param: "cursor" });
  });

  it("the largest bigint cursor is a valid (empty past its end: everything) page", async ({ app, org }) => {
    const res = await app.call("GET", `/v1/billing/transactions?cursor=${cursor("s:9223372036854775807")}`, {
      key: org.orgKey,
    });
    expect(res.status, res.text).toBe(200);
  });

  it.for(["9999-12", "0000-01", "0001-01", "0099-12", "0100-03", "1969-12", "2026-00", "2026-13"])(
    "?period=%s is 400 naming period",
    async (p, { app, org }) => {
      const res = await app.call("GET", `/v1/billing/usage?period=${p}`, { key: org.orgKey });
      expect(res.status, res.text).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_request", param: "period" });
    },
  );

  it.for([
    ["1970-01", "1970-01-01T00:00:00.000Z"],
    ["9998-12", "9998-12-01T00:00:00.000Z"],
  ])("?period=%s is that month's cycle", async ([p, start], { app, org }) => {
    const res = await app.call("GET", `/v1/billing/usage?period=${p}`, { key: org.orgKey });
    expect(res.status, res.text).toBe(200);
    expect(res.json.period).toMatchObject({ label: p, start });
  });

  it.for(["9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z", "0000-01-01T00:00:00+01:00"])(
    "a grant expiring at %s is 400 naming expires_at",
    async (expiresAt, { app, org }) => {
      const res = await app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
        key: TEST_ADMIN_KEY,
        headers: { "idempotency-key": `far-${expiresAt}` },
        body: { amount: "1.00", reason: "far future", expires_at: expiresAt },
      });
      expect(res.status, res.text).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_request", param: "expires_at" });
    },
  );

  it("a grant expiring at 9999-12-31T23:59:59Z is accepted", async ({ app, org }) => {
    const res = await app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "far-but-fine" },
      body: { amount: "1.00", reason: "far future", expires_at: "9999-12-31T23:59:59Z" },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.json.expires_at).toBe("9999-12-31T23:59:59.000Z");
  });

  it("a usage event in year 10000 (UTC) is that event's rejection naming timestamp, not a 500", async ({
    app,
    org,
  }) => {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "y10k",
            org_id: org.id,
            timestamp: "9999-12-31T23:59:59-01:00",
            product: "api",
            quantities: { requests: 1 },
          },
        ],
      },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json.results[0]).toMatchObject({ status: "rejected", error: { code: "invalid_request" } });
    expect(res.json.results[0].error.param).toMatch(/timestamp$/);
  });
});

describe("ADMIN_API_KEY accepts what authentication accepts", () => {
  const key = (n: number) => `hk-${"a".repeat(n)}`;
  it.each([16, 128])("a key with %i characters after hk- is accepted and authenticates", async (n) => {
    const config = loadConfig({ ADMIN_API_KEY: key(n) });
    const noDatabase = (() => {
      throw new Error("the bootstrap key needs no database");
    }) as unknown as Sql;
    expect(await authenticate(noDatabase, key(n), config.ADMIN_API_KEY)).toMatchObject({ scope: "admin" });
  });
  it.each([15, 129])("a key with %i characters after hk- is refused by the configuration", (n) => {
    expect(() => loadConfig({ ADMIN_API_KEY: key(n) })).toThrow(/ADMIN_API_KEY/);
  });
  it("so is one with characters no key has", () => {
    expect(() => loadConfig({ ADMIN_API_KEY: `hk-${"a".repeat(20)}!` })).toThrow(/ADMIN_API_KEY/);
  });
});

describe("unknown keys are answered from memory", () => {
  /** The real database, counting the statements authentication sends. */
  function counting(db: TestDatabase) {
    const counter = { statements: 0, sql: undefined as unknown as Sql };
    counter.sql = ((...args: Parameters<Sql>) => {
      counter.statements++;
      return (db.sql as unknown as (...a: unknown[]) => unknown)(...args);
    }) as unknown as Sql;
    return counter;
  }
  const refusedWith = (p: Promise<unknown>) =>
    p.then(
      () => "accepted",
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    );

  it("an unknown key costs one query per KEY_REFUSAL_TTL_MS, then is asked again", async ({ db }) => {
    const cache = new KeyCache(1_000, 100, 60_000);
    const db2 = counting(db);
    const unknown = "hk-unknown-key-0123456789abcdef";
    for (let i = 0; i < 20; i++)
      expect(await refusedWith(authenticate(db2.sql, unknown, undefined, cache))).toBe(
        "invalid_api_key: the API key is not valid",
      );
    expect(db2.statements).toBe(1);
    // Past the refusal's life the key is looked up again (it could not have been created meanwhile,
    // keys being random, but nothing is refused from memory for longer than that).
    const short = new KeyCache(1_000, 100, 0);
    const db3 = counting(db);
    await refusedWith(authenticate(db3.sql, unknown, undefined, short));
    await refusedWith(authenticate(db3.sql, unknown, undefined, short));
    expect(db3.statements).toBe(2);
  });

  it("a revoked key is refused from memory as revoked", async ({ db, app }) => {
    const org = await app.createOrg();
    const key = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    await app.call("DELETE", `/v1/admin/keys/${key.json.id}`, { key: TEST_ADMIN_KEY });
    const cache = new KeyCache();
    const db2 = counting(db);
    for (let i = 0; i < 5; i++)
      expect(await refusedWith(authenticate(db2.sql, key.json.key, undefined, cache))).toMatch(/revoked/);
    expect(db2.statements).toBe(1);
  });

  it("the refusals kept are bounded: a flood of random keys keeps at most the newest", async ({ db }) => {
    const cache = new KeyCache(1_000, 100, 60_000, 50);
    const db2 = counting(db);
    for (let i = 0; i < 500; i++)
      await refusedWith(authenticate(db2.sql, `hk-random-${String(i).padStart(16, "0")}`, undefined, cache));
    expect(cache.size.refusals).toBe(50);
    expect(db2.statements).toBe(500);
    // The newest are still answered from memory, the oldest were let go.
    await refusedWith(authenticate(db2.sql, `hk-random-${String(499).padStart(16, "0")}`, undefined, cache));
    expect(db2.statements).toBe(500);
    await refusedWith(authenticate(db2.sql, `hk-random-${String(0).padStart(16, "0")}`, undefined, cache));
    expect(db2.statements).toBe(501);
  });
});
