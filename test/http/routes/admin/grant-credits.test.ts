import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";
import { expireGrants } from "../../../../src/billing/grants.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { expectLedgerConsistent } from "../../../support/ledger.js";
import { contextAt } from "../../../support/context.js";

describe("POST /v1/admin/orgs/{id}/credits (grantCredits)", () => {
  const clock = manualClock();
  it.scoped({ dbOptions: { max: 12 }, appOptions: { clock } });

  const postGrant = (app: TestApp, orgId: string, key: string, body: Record<string, unknown>) =>
    app.call("POST", `/v1/admin/orgs/${orgId}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": key },
      body,
    });

  it("a grant posted twice with one idempotency key credits once, and a changed body under that key is refused", async ({
    app,
  }) => {
    const org = await app.createOrg();
    const first = await app.grant(org.id, "25.00", "welcome-1");
    expect(first.status).toBe(201);
    const replay = await app.grant(org.id, "25.00", "welcome-1");
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json.id).toBe(first.json.id);
    const changed = await app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "welcome-1" },
      body: { amount: "26.00", reason: "test grant" },
    });
    expect(changed.status).toBe(409);
    expect(changed.json.error.code).toBe("idempotency_key_reused");
    const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.balance_nano_usd).toBe("25000000000");
  });

  it("the same key on two organizations is two grants", async ({ app }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(a.id, "1", "shared-key");
    await app.grant(b.id, "1", "shared-key");
    expect((await app.call("GET", "/v1/billing/balance", { key: b.orgKey })).json.balance).toBe(1);
  });

  it("an operator's key shaped like a plan's included credits is refused, and the plan's credits still come", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const org = await app.createOrg("Collider");
    // The key of the Pro plan's credits for the cycle ending 2026-12-01 (anchor day 1).
    const taken = await postGrant(app, org.id, "plan-credits:2026-12-01T00:00:00.000Z", {
      amount: "1.00",
      reason: "x",
    });
    expect(taken.status).toBe(400);
    expect(taken.json.error).toMatchObject({ code: "invalid_request", param: "Idempotency-Key" });
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(sub.status, sub.text).toBe(200);
    const grants = await db.sql<{ source: string; amount: string }[]>`
      select source, amount::text from credit_grants where org_id = ${org.id}`;
    expect(grants).toEqual([{ source: "plan", amount: "20000000000" }]);
    // Nor can an operator's grant replay the plan's under its key.
    const replay = {
      amount: "20.00",
      reason: "Pro plan: included credits until 2026-12-01",
      expires_at: "2026-12-01T00:00:00Z",
    };
    expect((await postGrant(app, org.id, "plan-credits:2026-12-01T00:00:00.000Z", replay)).status).toBe(400);
    await expectLedgerConsistent(db.sql);
  });

  it("racing grants with one idempotency key credit once", async ({ db, app }) => {
    const org = await app.createOrg();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
          key: TEST_ADMIN_KEY,
          headers: { "idempotency-key": "race-1" },
          body: { amount: "10.00", reason: "race" },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
    const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.balance_nano_usd).toBe("10000000000");
    const rows =
      await db.sql`select count(*)::int as n from ledger_transactions where org_id = ${org.id} and kind = 'grant'`;
    expect(rows[0]!.n).toBe(1);
  });

  it("a grant retried after its expires_at answers the first grant, and the key still refuses another payload", async ({
    db,
    app,
  }) => {
    const org = await app.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60_000).toISOString();
    const body = { amount: "5.00", reason: "trial", expires_at: expiresAt };
    const first = await postGrant(app, org.id, "trial-1", body);
    expect(first.status).toBe(201);

    clock.advance(2 * 60 * 60_000); // the grant has expired; its expiry is not posted yet
    const replay = await postGrant(app, org.id, "trial-1", body);
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(first.json);

    // Same key, other payloads: refused as a reused key, not judged on their (past) expiry.
    for (const other of [
      { ...body, amount: "6.00" },
      { ...body, expires_at: new Date(clock().getTime() - 1000).toISOString() },
    ]) {
      const refused = await postGrant(app, org.id, "trial-1", other);
      expect(refused.status).toBe(409);
      expect(refused.json.error.code).toBe("idempotency_key_reused");
    }
    // A new key with a past expiry is still a bad request.
    const late = await postGrant(app, org.id, "trial-2", body);
    expect(late.status).toBe(400);
    expect(late.json.error.message).toBe("expires_at must be in the future");

    const [{ n }] =
      (await db.sql`select count(*)::int as n from credit_grants where org_id = ${org.id}`) as unknown as [
        { n: number },
      ];
    expect(n).toBe(1);
  });

  it("refuses an expiry in the past", async ({ app }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "past" },
      body: { amount: "1", reason: "x", expires_at: "2000-01-01T00:00:00Z" },
    });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe("expires_at");
  });

  it("an expiring grant stops counting the moment it expires, and the worker's posting agrees", async ({ db, app }) => {
    const org = await app.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60 * 1000);
    await app.grant(org.id, "5", "expiring", { expires_at: expiresAt.toISOString() });
    await app.grant(org.id, "2", "forever");
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance).toBe(7);
    clock.set(new Date(expiresAt.getTime()));
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance).toBe(2);
    expect(await expireGrants(contextAt(db.appSql, clock()))).toBeGreaterThanOrEqual(1);
    expect(await expireGrants(contextAt(db.appSql, clock()))).toBe(0); // idempotent
    const after = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(after.json.balance_nano_usd).toBe("2000000000");
    const history = await app.call("GET", "/v1/billing/transactions", { key: org.orgKey });
    expect(history.json.data.map((d: { kind: string }) => d.kind)).toEqual(["grant_expiry", "grant", "grant"]);
    expect(history.json.data[0].amount_nano_usd).toBe("-5000000000");
    await expectLedgerConsistent(db.sql);
  });

  it("grant money held for a request when the grant expires pays for that request; the rest expires when the hold closes", async ({
    db,
    app,
  }) => {
    const org = await app.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60 * 1000);
    await app.grant(org.id, "10", "held-then-expired", { expires_at: expiresAt.toISOString() });
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 100_000 }, ttl_seconds: 86_400 }, // $10: all of it
    });
    expect(hold.status).toBe(201);
    clock.set(new Date(expiresAt.getTime() + 60_000));
    // Nothing spendable is left, and the held $10 stays with its request.
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance: 10,
      credits: 0,
      held_nano_usd: "10000000000",
    });
    expect(await expireGrants(contextAt(db.appSql, clock()))).toBe(0); // waits for the hold taken while the grant was live
    const settle = await app.call("POST", "/v1/billing/usage", {
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
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance_nano_usd: "0",
      credits_nano_usd: "0",
    });
    expect(await expireGrants(contextAt(db.appSql, clock()))).toBe(1);
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      balance_nano_usd: "0",
      credits_nano_usd: "0",
    });
    await expectLedgerConsistent(db.sql);
  });
});
