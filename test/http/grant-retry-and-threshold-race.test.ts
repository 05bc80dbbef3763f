import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

describe("retried grants and racing threshold updates", () => {
  let db: TestDatabase;
  let t: TestApp;
  const clock = manualClock();
  beforeAll(async () => {
    // Enough connections for the racing PATCHes to really run side by side.
    db = await createTestDatabase({ max: 16 });
    t = createTestApp({ sql: db.sql, clock });
  });
  afterAll(() => db.drop());

  const postGrant = (orgId: string, key: string, body: Record<string, unknown>) =>
    t.call("POST", `/v1/admin/orgs/${orgId}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": key },
      body,
    });

  it("a grant retried after its expires_at answers the first grant, and the key still refuses another payload", async () => {
    const org = await t.createOrg();
    const expiresAt = new Date(clock().getTime() + 60 * 60_000).toISOString();
    const body = { amount: "5.00", reason: "trial", expires_at: expiresAt };
    const first = await postGrant(org.id, "trial-1", body);
    expect(first.status).toBe(201);

    clock.advance(2 * 60 * 60_000); // the grant has expired; its expiry is not posted yet
    const replay = await postGrant(org.id, "trial-1", body);
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(first.json);

    // Same key, other payloads: refused as a reused key, not judged on their (past) expiry.
    for (const other of [
      { ...body, amount: "6.00" },
      { ...body, expires_at: new Date(clock().getTime() - 1000).toISOString() },
    ]) {
      const refused = await postGrant(org.id, "trial-1", other);
      expect(refused.status).toBe(409);
      expect(refused.json.error.code).toBe("idempotency_key_reused");
    }
    // A new key with a past expiry is still a bad request.
    const late = await postGrant(org.id, "trial-2", body);
    expect(late.status).toBe(400);
    expect(late.json.error.message).toBe("expires_at must be in the future");

    const [{ n }] =
      (await db.sql`select count(*)::int as n from credit_grants where org_id = ${org.id}`) as unknown as [
        { n: number },
      ];
    expect(n).toBe(1);
  });

  it("each of many racing PATCHes of the low-balance threshold answers the value it wrote", async () => {
    const org = await t.createOrg();
    await t.grant(org.id, "100");
    const values = Array.from({ length: 60 }, (_, i) => `${i + 1}.25`);
    const responses = await Promise.all(
      values.map((v) =>
        t.call("PATCH", "/v1/billing/balance", { key: org.orgKey, body: { low_balance_threshold: v } }),
      ),
    );
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      expect(res.json.low_balance_threshold_nano_usd, `PATCH to ${values[i]}`).toBe(
        `${(i + 1) * 1_000_000_000 + 250_000_000}`,
      );
      expect(res.json.balance_nano_usd).toBe("100000000000");
    }
  });
});
