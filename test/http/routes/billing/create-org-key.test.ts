import fc from "fast-check";
import { describe, expect } from "vitest";
import { MAX_ACTIVE_ORG_KEYS } from "../../../../src/billing/api-keys.js";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("POST /v1/billing/keys (createOrgKey)", () => {
  it("a keys:write key makes an org key of its organization, shown once; read-only keys on request", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "CI" } });
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ org_id: org.id, scope: "org", name: "CI", permissions: ["keys:write"] });
    expect(made.json.key.startsWith(made.json.prefix)).toBe(true);
    expect(JSON.stringify(await db.sql`select * from api_keys`)).not.toContain(made.json.key);
    expect((await app.call("GET", "/v1/billing/balance", { key: made.json.key })).status).toBe(200);

    const readOnly = await app.call("POST", "/v1/billing/keys", {
      key: made.json.key,
      body: { name: "dashboard", permissions: [] },
    });
    expect(readOnly.status).toBe(201);
    expect(readOnly.json.permissions).toEqual([]);
    // A read-only key reads (balance, its keys) but writes no key.
    expect((await app.call("GET", "/v1/billing/keys", { key: readOnly.json.key })).status).toBe(200);
    const refused = await app.call("POST", "/v1/billing/keys", { key: readOnly.json.key, body: { name: "x" } });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe("insufficient_scope");
    expect(refused.json.error.message).toContain("keys:write");
  });

  it("an org key can never make or become a gateway or admin key, on any route", async ({ app, db }) => {
    const org = await app.createOrg();
    for (const body of [
      { name: "gw", scope: "gateway" },
      { name: "adm", scope: "admin" },
      { name: "gw", permissions: ["gateway"] },
    ]) {
      const res = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    for (const [method, path, body] of [
      ["POST", "/v1/admin/keys", { scope: "gateway", name: "mine" }],
      ["POST", `/v1/admin/orgs/${org.id}/keys`, { scope: "gateway" }],
      ["POST", `/v1/admin/orgs/${org.id}/keys`, { scope: "org" }],
      ["DELETE", `/v1/admin/keys/${org.orgKeyId}`, undefined],
    ] as const) {
      const res = await app.call(method, path, { key: org.orgKey, body });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    // The database refuses the change itself, whoever asks: scope, organization and permissions are fixed.
    for (const change of [
      db.appSql`update api_keys set scope = 'gateway' where id = ${org.orgKeyId}`,
      db.appSql`update api_keys set scope = 'gateway', org_id = null, permissions = '{}' where id = ${org.orgKeyId}`,
      db.appSql`update api_keys set org_id = null where id = ${org.orgKeyId}`,
    ])
      await expect(change).rejects.toThrow(/never change/);
    const [row] = await db.sql`select scope, org_id from api_keys where id = ${org.orgKeyId}`;
    expect(row).toEqual({ scope: "org", org_id: org.id });
    const scopes = await db.sql`select distinct scope from api_keys where org_id = ${org.id}`;
    expect(scopes.map((r) => r.scope)).toEqual(["org"]);
  });

  it.for([
    ["no name", {}],
    ["an empty name", { name: "" }],
    ["a name of 101 characters", { name: "x".repeat(101) }],
    ["a name with a NUL", { name: "a\u0000" }],
    ["a number name", { name: 5 }],
    ["an unknown permission", { name: "x", permissions: ["billing:admin"] }],
    ["permissions not a list", { name: "x", permissions: "keys:write" }],
    ["a repeated permission beyond the list's size", { name: "x", permissions: ["keys:write", "keys:write"] }],
    ["an unknown field", { name: "x", org_id: "org_other" }],
  ] as const)("%s → 400 in the envelope", async ([, body], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body });
    expect(res.status, res.text).toBe(400);
    expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request" });
  });

  it(`many racing creates: each gets its own key, and no organization passes ${MAX_ACTIVE_ORG_KEYS} active keys`, async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const results = await Promise.all(
      Array.from({ length: MAX_ACTIVE_ORG_KEYS + 20 }, (_, i) =>
        app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: `k${i}` } }),
      ),
    );
    const made = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 409);
    expect(made.length + refused.length).toBe(results.length);
    expect(made).toHaveLength(MAX_ACTIVE_ORG_KEYS - 1); // the org's first key counts
    expect(new Set(made.map((r) => r.json.id)).size).toBe(made.length);
    const [n] = await db.sql`select count(*)::int as n from api_keys where org_id = ${org.id} and revoked_at is null`;
    expect(n!.n).toBe(MAX_ACTIVE_ORG_KEYS);
  });

  // Permissions form a lattice (subsets of KeyPermissions, ordered by inclusion): whatever chain of
  // self-serve creations runs, a key's permissions are within its maker's, so none has more than the
  // organization's first key, and a read-only key makes nothing.
  it("no chain of self-serve keys gains a permission its maker did not have", async ({ app }) => {
    const org = await app.createOrg();
    const first = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org", permissions: ["keys:write"] },
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            maker: fc.nat(),
            permissions: fc.option(fc.subarray(["keys:write"] as const), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (steps) => {
          const keys: { id: string; key: string; permissions: string[] }[] = [
            { id: first.json.id, key: first.json.key, permissions: ["keys:write"] },
          ];
          for (const step of steps) {
            const maker = keys[step.maker % keys.length]!;
            const res = await app.call("POST", "/v1/billing/keys", {
              key: maker.key,
              body: { name: "chain", ...(step.permissions ? { permissions: step.permissions } : {}) },
            });
            if (!maker.permissions.includes("keys:write")) {
              expect(res.status).toBe(403);
              continue;
            }
            expect(res.status, res.text).toBe(201);
            expect(res.json.scope).toBe("org");
            expect(res.json.org_id).toBe(org.id);
            for (const p of res.json.permissions) expect(maker.permissions).toContain(p);
            expect(res.json.permissions).toEqual(step.permissions ?? maker.permissions);
            keys.push({ id: res.json.id, key: res.json.key, permissions: res.json.permissions });
          }
          // Revoke what this run made (as an operator), so the next run starts under the limit.
          for (const k of keys.slice(1)) await app.call("DELETE", `/v1/admin/keys/${k.id}`, { key: TEST_ADMIN_KEY });
        },
      ),
      { numRuns: 15 },
    );
  });
});
