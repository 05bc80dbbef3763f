import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("POST /v1/admin/orgs (createOrg)", () => {
  it("creates an organization with the default threshold", async ({ app }) => {
    const org = await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    expect(org.status).toBe(201);
    expect(org.json).toMatchObject({ id: expect.stringMatching(/^org_/), name: "Acme AI", low_balance_threshold: 10 });
  });

  it("an org key may not create organizations (403)", async ({ app }) => {
    const org = await app.createOrg();
    const asOrg = await app.call("POST", "/v1/admin/orgs", { key: org.orgKey, body: { name: "x" } });
    expect(asOrg.status).toBe(403);
    expect(asOrg.json.error.code).toBe("insufficient_scope");
  });

  it("with an Idempotency-Key makes one organization (and one referral link), however often it is retried", async ({
    app,
    db,
  }) => {
    const referrer = await app.createOrg("Referrer Co");
    const code = (await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey })).json.code as string;
    const create = (body: Record<string, unknown>) =>
      app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, headers: { "idempotency-key": "make-once" }, body });
    const body = { name: "Retried AI", referral_code: code };
    // A retry after a lost answer, and one racing it.
    const first = await create(body);
    const [again, racing] = await Promise.all([create(body), create(body)]);
    expect(first.status).toBe(201);
    for (const replay of [again, racing]) {
      expect(replay.status).toBe(200);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(replay.json).toEqual(first.json);
    }
    const made = await db.sql<{ id: string }[]>`select id from organizations where name = 'Retried AI'`;
    expect(made.map((o) => o.id)).toEqual([first.json.id]);
    const accounts = await db.sql`select id from ledger_accounts where org_id = ${first.json.id as string}`;
    expect(accounts).toHaveLength(1);
    const links = await db.sql`select 1 from referrals where referred_org_id = ${first.json.id as string}`;
    expect(links).toHaveLength(1);

    // The code in another case is the same code; another request is refused, whatever differs.
    expect((await create({ name: "Retried AI", referral_code: code.toUpperCase() })).status).toBe(200);
    const other = await app.createOrg("Other Referrer");
    const otherCode = (await app.call("GET", "/v1/billing/referrals", { key: other.orgKey })).json.code as string;
    for (const changed of [
      { name: "Another AI", referral_code: code },
      { name: "Retried AI" },
      { ...body, referral_code: otherCode },
    ]) {
      const reused = await create(changed);
      expect(reused.status, JSON.stringify(changed)).toBe(409);
      expect(reused.json.error.code).toBe("idempotency_key_reused");
    }
    // And the other way round: a key first used without a code is not answered for a request with one.
    const uncoded = { name: "Uncoded AI" };
    const createUncoded = (b: Record<string, unknown>) =>
      app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, headers: { "idempotency-key": "no-code" }, body: b });
    expect((await createUncoded(uncoded)).status).toBe(201);
    expect((await createUncoded({ ...uncoded, referral_code: code })).json.error?.code).toBe("idempotency_key_reused");
    // Without a key each request is its own organization, as before.
    const plain = await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Retried AI" } });
    expect(plain.status).toBe(201);
    expect(plain.json.id).not.toBe(first.json.id);
  });

  it("an admin's text that PostgreSQL would change or refuse is 400 naming the field: a lone surrogate, a control character", async ({
    app,
  }) => {
    const org = await app.createOrg("Texts");
    for (const bad of ["\ud800", "a\udc00b", "tab\there", "nul\u0000"]) {
      const admin = (path: string, body: Record<string, unknown>) =>
        app.call("POST", path, { key: TEST_ADMIN_KEY, headers: { "idempotency-key": `k-${bad.length}` }, body });
      const answers = {
        name: await admin("/v1/admin/orgs", { name: bad }),
        reason: await admin(`/v1/admin/orgs/${org.id}/credits`, { amount: "1.00", reason: bad }),
        description: await admin(`/v1/admin/orgs/${org.id}/adjustments`, { amount: "1.00", description: bad }),
      };
      for (const [field, res] of Object.entries(answers)) {
        expect(res.status, `${field} ${JSON.stringify(bad)}`).toBe(400);
        expect(res.json.error).toMatchObject({ code: "invalid_request", param: field });
      }
    }
    // Surrounding whitespace is still trimmed, and text in any script is kept as sent.
    const named = await app.call("POST", "/v1/admin/orgs", {
      key: TEST_ADMIN_KEY,
      body: { name: "  Ünïcode 株式会社 🚀 " },
    });
    expect(named.json.name).toBe("Ünïcode 株式会社 🚀");
  });
});
