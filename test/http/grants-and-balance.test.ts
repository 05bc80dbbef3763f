import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { expectLedgerConsistent } from "../support/ledger.js";

describe("credit grants and the balance", () => {
  let db: TestDatabase;
  let t: TestApp;
  const clock = manualClock();
  beforeAll(async () => {
    db = await createTestDatabase({ max: 12 });
    t = createTestApp({ sql: db.sql, clock });
  });
  afterAll(() => db.drop());

  it("returns exactly the seed's shape plus exact fields", async () => {
    const org = await t.createOrg();
    await t.grant(org.id, "142.87");
    const res = await t.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.text.startsWith('{"currency":"USD","balance":142.87,"credits":142.87,"low_balance_threshold":10,')).toBe(
      true,
    );
    expect(res.json).toEqual({
      currency: "USD",
      balance: 142.87,
      credits: 142.87,
      low_balance_threshold: 10,
      balance_nano_usd: "142870000000",
      credits_nano_usd: "142870000000",
      held_nano_usd: "0",
      low_balance_threshold_nano_usd: "10000000000",
    });
  });

  it("a grant posted twice with one idempotency key credits once, and a changed body under that key is refused", async () => {
    const org = await t.createOrg();
    const first = await t.grant(org.id, "25.00", "welcome-1");
    expect(first.status).toBe(201);
    const replay = await t.grant(org.id, "25.00", "welcome-1");
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json.id).toBe(first.json.id);
    const changed = await t.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "welcome-1" },
      body: { amount: "26.00", reason: "test grant" },
    });
    expect(changed.status).toBe(409);
    expect(changed.json.error.code).toBe("idempotency_key_reused");
    const balance = await t.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.balance_nano_usd).toBe("25000000000");
  });

  it("the same key on two organizations is two grants", async () => {
    const a = await t.createOrg("A");
    const b = await t.createOrg("B");
    await t.grant(a.id, "1", "shared-key");
    await t.grant(b.id, "1", "shared-key");
    expect((await t.call("GET", "/v1/billing/balance", { key: b.orgKey })).json.balance).toBe(1);
  });

  it("racing grants with one idempotency key credit once", async () => {
    const org = await t.createOrg();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        t.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
          key: TEST_ADMIN_KEY,
          headers: { "idempotency-key": "race-1" },
          body: { amount: "10.00", reason: "race" },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
    const balance = await t.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.balance_nano_usd).toBe("10000000000");
    const rows =
      await db.sql`select count(*)::int as n from ledger_transactions where org_id = ${org.id} and kind = 'grant'`;
    expect(rows[0]!.n).toBe(1);
  });

  it("an expiring grant stops counting the moment it expires, and the worker's posting agrees", async () => {
    const org = await t.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60 * 1000);
    await t.grant(org.id, "5", "expiring", { expires_at: expiresAt.toISOString() });
    await t.grant(org.id, "2", "forever");
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance).toBe(7);
    clock.set(new Date(expiresAt.getTime()));
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance).toBe(2);
    expect(await expireGrants(db.sql, clock())).toBeGreaterThanOrEqual(1);
    expect(await expireGrants(db.sql, clock())).toBe(0); // idempotent
    const after = await t.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(after.json.balance_nano_usd).toBe("2000000000");
    const history = await t.call("GET", "/v1/billing/transactions", { key: org.orgKey });
    expect(history.json.data.map((d: { kind: string }) => d.kind)).toEqual(["grant_expiry", "grant", "grant"]);
    expect(history.json.data[0].amount_nano_usd).toBe("-5000000000");
    await expectLedgerConsistent(db.sql);
  });

  it("refuses an expiry in the past", async () => {
    const org = await t.createOrg();
    const res = await t.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "past" },
      body: { amount: "1", reason: "x", expires_at: "2000-01-01T00:00:00Z" },
    });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe("expires_at");
  });

  it("sets the low-balance threshold from a number or an exact string", async () => {
    const org = await t.createOrg();
    const asNumber = await t.call("PATCH", "/v1/billing/balance", {
      key: org.orgKey,
      body: { low_balance_threshold: 25.5 },
    });
    expect(asNumber.status).toBe(200);
    expect(asNumber.json.low_balance_threshold).toBe(25.5);
    const asString = await t.call("PATCH", "/v1/billing/balance", {
      key: org.orgKey,
      body: { low_balance_threshold: "0.000000001" },
    });
    expect(asString.json.low_balance_threshold_nano_usd).toBe("1");
    for (const bad of [-1, "-1", "1.0000000001", 1e30, "ten", null, true]) {
      const res = await t.call("PATCH", "/v1/billing/balance", {
        key: org.orgKey,
        body: { low_balance_threshold: bad },
      });
      expect(res.status, String(bad)).toBe(400);
      expect(res.json.error.param).toBe("low_balance_threshold");
    }
  });

  it("pages the ledger history newest first with a cursor", async () => {
    const org = await t.createOrg();
    for (let i = 1; i <= 5; i++) await t.grant(org.id, `${i}`, `page-${i}`);
    const first = await t.call("GET", "/v1/billing/transactions?limit=2", { key: org.orgKey });
    expect(first.json.data.map((d: { amount: number }) => d.amount)).toEqual([5, 4]);
    expect(first.json.has_more).toBe(true);
    const second = await t.call("GET", `/v1/billing/transactions?limit=2&cursor=${first.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(second.json.data.map((d: { amount: number }) => d.amount)).toEqual([3, 2]);
    const third = await t.call("GET", `/v1/billing/transactions?limit=2&cursor=${second.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(third.json.data.map((d: { amount: number }) => d.amount)).toEqual([1]);
    expect(third.json).toMatchObject({ has_more: false, next_cursor: null });
    const bad = await t.call("GET", "/v1/billing/transactions?cursor=garbage", { key: org.orgKey });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("cursor");
  });

  it("grant money held for a request when the grant expires pays for that request; the rest expires when the hold closes", async () => {
    const org = await t.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60 * 1000);
    await t.grant(org.id, "10", "held-then-expired", { expires_at: expiresAt.toISOString() });
    const hold = await t.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 100_000 }, ttl_seconds: 86_400 }, // $10: all of it
    });
    expect(hold.status).toBe(201);
    clock.set(new Date(expiresAt.getTime() + 60_000));
    // Nothing spendable is left, and the held $10 stays with its request.
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance: 10,
      credits: 0,
      held_nano_usd: "10000000000",
    });
    expect(await expireGrants(db.sql, clock())).toBe(0); // waits for the hold taken while the grant was live
    const settle = await t.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "after-expiry",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 1 },
            hold_id: hold.json.hold_id,
          },
        ],
      },
    });
    expect(settle.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released" });
    // The request was paid by the grant; the rest of the grant is gone, before and after the posting.
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance_nano_usd: "0",
      credits_nano_usd: "0",
    });
    expect(await expireGrants(db.sql, clock())).toBe(1);
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance_nano_usd: "0",
      credits_nano_usd: "0",
    });
    await expectLedgerConsistent(db.sql);
  });
});
