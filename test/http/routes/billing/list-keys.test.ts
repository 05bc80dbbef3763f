import { describe, expect } from "vitest";
import { createTestApp, manualClock, TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/keys (listKeys)", () => {
  it("lists the organization's own keys, newest first: name, prefix, permissions, times; never a secret", async ({
    app,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    const ci = await app.call("POST", "/v1/billing/keys", { key: a.orgKey, body: { name: "CI", permissions: [] } });
    const bKey = await app.call("POST", "/v1/billing/keys", { key: b.orgKey, body: { name: "B's secret project" } });
    await app.call("DELETE", `/v1/billing/keys/${ci.json.id}`, { key: a.orgKey });

    const res = await app.call("GET", "/v1/billing/keys", { key: a.orgKey });
    expect(res.status).toBe(200);
    expect(res.json.data.map((k: { id: string }) => k.id)).toEqual([ci.json.id, a.orgKeyId]);
    expect(res.json.data[0]).toEqual({
      id: ci.json.id,
      org_id: a.id,
      scope: "org",
      name: "CI",
      permissions: [],
      prefix: ci.json.prefix,
      created_at: ci.json.created_at,
      last_used_at: null,
      revoked_at: expect.any(String),
    });
    expect(res.json.data[1]).toMatchObject({ permissions: ["keys:write"], last_used_at: expect.any(String) });
    for (const secret of [a.orgKey, ci.json.key, b.orgKey, bKey.json.key, a.gatewayKey])
      expect(res.text).not.toContain(secret);
    expect(res.text).not.toContain(b.id);
    expect(res.text).not.toContain(bKey.json.id);
  });

  it("a read-only key lists too", async ({ app }) => {
    const org = await app.createOrg();
    const ro = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org", permissions: [] },
    });
    const res = await app.call("GET", "/v1/billing/keys", { key: ro.json.key });
    expect(res.status).toBe(200);
    expect(res.json.data).toHaveLength(2);
  });

  it("last_used_at: 200 concurrent requests with one key on two replicas write it once; again only after a minute", async ({
    db,
  }) => {
    // Counts every row write of last_used_at, whoever makes it (a trigger of this test's database).
    await db.sql.unsafe(`
      create table billing.test_key_use_writes (key_id text, at timestamptz);
      create function billing.test_count_key_use() returns trigger language plpgsql security definer
        set search_path = billing as $$ begin insert into test_key_use_writes values (new.id, new.last_used_at); return new; end $$;
      create trigger test_count_key_use after update of last_used_at on billing.api_keys
        for each row execute function billing.test_count_key_use();`);
    const clock = manualClock();
    const one = createTestApp({ sql: db.appSql, clock });
    const two = createTestApp({ sql: db.appSql, clock });
    const org = await one.createOrg();
    const writes = async () =>
      (
        await db.sql<
          { at: Date }[]
        >`select at from billing.test_key_use_writes where key_id = ${org.orgKeyId} order by at`
      ).map((r) => r.at.toISOString());
    const burst = async () => {
      const res = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? one : two).call("GET", "/v1/billing/balance", { key: org.orgKey }),
        ),
      );
      expect(res.every((r) => r.status === 200)).toBe(true);
    };
    const t0 = clock().toISOString();
    await burst();
    expect(await writes()).toEqual([t0]);
    clock.advance(59_000);
    await burst();
    expect(await writes()).toEqual([t0]);
    clock.advance(1_000);
    const t1 = clock().toISOString();
    await burst();
    expect(await writes()).toEqual([t0, t1]);
    const listed = await one.call("GET", "/v1/billing/keys", { key: org.orgKey });
    expect(listed.json.data.find((k: { id: string }) => k.id === org.orgKeyId).last_used_at).toBe(t1);
  });
});
