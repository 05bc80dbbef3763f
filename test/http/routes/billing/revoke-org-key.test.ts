import { describe, expect } from "vitest";
import { KeyCache } from "../../../../src/billing/api-keys.js";
import { createTestApp, TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";
import { waitFor } from "../../../support/process.js";

describe("DELETE /v1/billing/keys/{id} (revokeOrgKey)", () => {
  it("revokes (marks, never deletes) one of the organization's keys; again answers the first revocation", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "temp" } });
    expect((await app.call("GET", "/v1/billing/balance", { key: made.json.key })).status).toBe(200);
    const del = await app.call("DELETE", `/v1/billing/keys/${made.json.id}`, { key: org.orgKey });
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ id: made.json.id, revoked: true, revoked_at: expect.any(String) });
    const again = await app.call("DELETE", `/v1/billing/keys/${made.json.id}`, { key: org.orgKey });
    expect(again.json.revoked_at).toBe(del.json.revoked_at);
    const after = await app.call("GET", "/v1/billing/balance", { key: made.json.key });
    expect(after.status).toBe(401);
    expect(after.json.error.message).toMatch(/revoked/);
    const [row] = await db.sql`select revoked_at from api_keys where id = ${made.json.id}`;
    expect(row!.revoked_at).toBeInstanceOf(Date);
    await expect(db.appSql`update api_keys set revoked_at = null where id = ${made.json.id}`).rejects.toThrow(
      /stays revoked/,
    );
  });

  it("another organization's key, a gateway key, an admin key or an unknown id: 404, and nothing changes", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    const bKey = await app.call("POST", "/v1/billing/keys", { key: b.orgKey, body: { name: "b's" } });
    const admin = await app.call("POST", `/v1/admin/orgs/${a.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "admin" },
    });
    const gateway = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "g" },
    });
    for (const id of [bKey.json.id, b.orgKeyId, admin.json.id, gateway.json.id, "key_nope"]) {
      const res = await app.call("DELETE", `/v1/billing/keys/${id}`, { key: a.orgKey });
      expect(res.status, id).toBe(404);
      expect(res.json.error.code).toBe("not_found");
    }
    const [n] = await db.sql`
      select count(*)::int as n from api_keys
      where revoked_at is not null and (org_id in (${a.id}, ${b.id}) or id = ${gateway.json.id})`;
    expect(n!.n).toBe(0);
    expect((await app.call("GET", "/v1/billing/balance", { key: bKey.json.key })).status).toBe(200);
  });

  it("a read-only key gets 403 insufficient_scope; a gateway key 403", async ({ app }) => {
    const org = await app.createOrg();
    const ro = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "ro", permissions: [] } });
    const res = await app.call("DELETE", `/v1/billing/keys/${ro.json.id}`, { key: ro.json.key });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("insufficient_scope");
    expect((await app.call("DELETE", `/v1/billing/keys/${ro.json.id}`, { key: org.gatewayKey })).status).toBe(403);
  });

  it("the organization's last keys:write key cannot be revoked here (409); once another exists it can", async ({
    app,
  }) => {
    const org = await app.createOrg();
    const ro = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "ro", permissions: [] } });
    const last = await app.call("DELETE", `/v1/billing/keys/${org.orgKeyId}`, { key: org.orgKey });
    expect(last.status).toBe(409);
    expect(last.json.error.code).toBe("conflict");
    expect(last.json.error.message).toMatch(/last key with keys:write/);
    // A read-only key is never the last writer: revoking it is fine.
    expect((await app.call("DELETE", `/v1/billing/keys/${ro.json.id}`, { key: org.orgKey })).status).toBe(200);
    const next = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "successor" } });
    const self = await app.call("DELETE", `/v1/billing/keys/${org.orgKeyId}`, { key: org.orgKey });
    expect(self.status).toBe(200);
    expect((await app.call("GET", "/v1/billing/keys", { key: org.orgKey })).status).toBe(401);
    expect((await app.call("GET", "/v1/billing/keys", { key: next.json.key })).status).toBe(200);
    // An operator is not held by the rule.
    expect((await app.call("DELETE", `/v1/admin/keys/${next.json.id}`, { key: TEST_ADMIN_KEY })).status).toBe(200);
  });

  it("racing revokes of every keys:write key, each by itself or another: exactly one writer survives", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const writers = [{ id: org.orgKeyId, key: org.orgKey }];
    for (let i = 0; i < 11; i++) {
      const k = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: `w${i}` } });
      writers.push({ id: k.json.id, key: k.json.key });
    }
    // Each key revokes the next one (the last revokes the first), all at once, twice over with creates mixed in.
    const results = await Promise.all([
      ...writers.map((w, i) =>
        app.call("DELETE", `/v1/billing/keys/${writers[(i + 1) % writers.length]!.id}`, { key: w.key }),
      ),
      ...writers.map((w) => app.call("DELETE", `/v1/billing/keys/${w.id}`, { key: w.key })),
      ...writers.map((w, i) =>
        app.call("POST", "/v1/billing/keys", { key: w.key, body: { name: `r${i}`, permissions: [] } }),
      ),
    ]);
    for (const r of results) expect([200, 201, 401, 404, 409], r.text).toContain(r.status);
    const live = await db.sql<{ id: string; permissions: string[] }[]>`
      select id, permissions from api_keys where org_id = ${org.id} and revoked_at is null`;
    const liveWriters = live.filter((k) => k.permissions.includes("keys:write"));
    expect(liveWriters).toHaveLength(1);
    // Every read-only key made was made by a key live when it was made: none by a key whose revocation had committed.
    const made = results.filter((r) => r.status === 201);
    expect(made.every((r) => r.json.permissions.length === 0)).toBe(true);
  });

  it("with the key cache on (as the API process runs), a self-serve revocation applies at once on this replica", async ({
    db,
  }) => {
    const cached = createTestApp({ sql: db.appSql, extra: { keyCache: new KeyCache() } });
    const org = await cached.createOrg();
    const key = await cached.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "cached" } });
    expect((await cached.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(200); // now cached
    expect((await cached.call("DELETE", `/v1/billing/keys/${key.json.id}`, { key: org.orgKey })).status).toBe(200);
    expect((await cached.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(401);
  });

  it("another replica's cache hears a self-serve revocation (NOTIFY) and refuses the key", async ({ db }) => {
    const one = createTestApp({ sql: db.appSql, extra: { keyCache: new KeyCache() } });
    const otherCache = new KeyCache(60_000); // trusts entries for a minute: only the notice can evict
    const stop = await otherCache.listen(db.appSql);
    try {
      const other = createTestApp({ sql: db.appSql, extra: { keyCache: otherCache } });
      const org = await one.createOrg();
      const key = await one.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "x" } });
      expect((await other.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(200);
      expect(otherCache.size.keys).toBeGreaterThan(0);
      expect((await one.call("DELETE", `/v1/billing/keys/${key.json.id}`, { key: org.orgKey })).status).toBe(200);
      await waitFor(
        async () => (await other.call("GET", "/v1/billing/balance", { key: key.json.key })).status === 401,
        {
          what: "the other replica refuses the revoked key",
          timeoutMs: 5_000,
        },
      );
    } finally {
      await stop();
    }
  });

  it.for([
    ["an id of 65 characters", "k".repeat(65), 400],
    ["an id of 500 characters", "x".repeat(500), 400],
    ["SQL in the id", "'; update api_keys set revoked_at = now(); --", 404],
    ["a NUL in the id", "%00", 400],
  ] as const)("%s → its status in the envelope", async ([, id, status], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("DELETE", `/v1/billing/keys/${id.startsWith("%") ? id : encodeURIComponent(id)}`, {
      key: org.orgKey,
    });
    expect(res.status, res.text).toBe(status);
    expect(res.json.error).toMatchObject({ code: status === 400 ? "invalid_request" : "not_found" });
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).status).toBe(200);
  });
});
