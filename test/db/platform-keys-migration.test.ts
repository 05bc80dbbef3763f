import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { authenticate, hashKey } from "../../src/billing/api-keys.js";
import { createSql } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { migrateUpTo } from "../support/migrations.js";
import { databaseUrl, TEST_PG_URL } from "../support/services.js";

const MIGRATION = "0027_platform_keys";

/**
 * Migration 0027 on a database that has gateway keys made the old way (under an organization):
 * they keep their id and secret, still authenticate, and belong to no organization afterwards;
 * org keys get keys:write.
 */
describe(`migration ${MIGRATION}`, () => {
  it("moves existing gateway keys out of their organization; they keep working", async () => {
    const name = `hanzo_t_mig_keys_${randomBytes(4).toString("hex")}`;
    const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const sql = createSql(databaseUrl(name), { max: 2 });
    try {
      await migrateUpTo(sql, MIGRATION);

      const gatewayKey = `hk-${"g".repeat(40)}`;
      const orgKey = `hk-${"o".repeat(40)}`;
      await sql`insert into organizations (id, name) values ('org_old', 'Old')`;
      await sql`insert into api_keys (id, org_id, scope, key_hash, key_prefix) values
        ('key_gw', 'org_old', 'gateway', ${hashKey(gatewayKey)}, ${gatewayKey.slice(0, 9)}),
        ('key_org', 'org_old', 'org', ${hashKey(orgKey)}, ${orgKey.slice(0, 9)})`;

      await migrate(sql);
      const rows = await sql`select id, org_id, scope, name, permissions from api_keys order by id`;
      expect(rows).toEqual([
        { id: "key_gw", org_id: null, scope: "gateway", name: "gateway key (made under org_old)", permissions: [] },
        { id: "key_org", org_id: "org_old", scope: "org", name: null, permissions: ["keys:write"] },
      ]);
      expect(await authenticate(sql, gatewayKey, undefined)).toEqual({
        keyId: "key_gw",
        orgId: null,
        scope: "gateway",
        permissions: [],
      });
      // After it, a gateway key cannot be put back under an organization.
      await expect(sql`update api_keys set org_id = 'org_old' where id = 'key_gw'`).rejects.toThrow(/never change/);
      await expect(
        sql`insert into api_keys (id, org_id, scope, key_hash, key_prefix) values ('key_x', 'org_old', 'gateway', ${hashKey("hk-x")}, 'hk-x')`,
      ).rejects.toThrow(/api_keys_owner/);
    } finally {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });
});
