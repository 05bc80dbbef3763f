import { createHash, timingSafeEqual } from "node:crypto";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId, randomBase62 } from "../ids.js";

export const KeyScopes = ["org", "gateway", "admin"] as const;
export type KeyScope = (typeof KeyScopes)[number];

/** Who a request speaks for. The bootstrap admin key has no organization and no row. */
export type Principal = { keyId: string; orgId: string | null; scope: KeyScope };

export const API_KEY_PATTERN = /^hk-[A-Za-z0-9_-]{16,128}$/;

export function hashKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

export type CreatedKey = { id: string; key: string; orgId: string; scope: KeyScope; prefix: string; createdAt: Date };

/** The plaintext exists only in this return value: it is shown once and stored as a hash. */
export async function createApiKey(sql: Sql, input: { orgId: string; scope: KeyScope }): Promise<CreatedKey> {
  const key = `hk-${randomBase62(40)}`; // ~238 bits of entropy
  const id = newId("key");
  const prefix = key.slice(0, 9);
  const [row] = await sql<{ created_at: Date }[]>`
    insert into api_keys (id, org_id, scope, key_hash, key_prefix)
    select ${id}, id, ${input.scope}, ${hashKey(key)}, ${prefix} from organizations where id = ${input.orgId}
    returning created_at`;
  if (!row) throw new BillingError("not_found", `no organization ${input.orgId}`);
  return { id, key, orgId: input.orgId, scope: input.scope, prefix, createdAt: row.created_at };
}

export async function revokeApiKey(sql: Sql, keyId: string, now: Date): Promise<{ id: string; revokedAt: Date }> {
  // coalesce keeps the first revocation time: revoking twice is harmless and tells the same story.
  const [row] = await sql<{ id: string; revoked_at: Date }[]>`
    update api_keys set revoked_at = coalesce(revoked_at, ${now}) where id = ${keyId} returning id, revoked_at`;
  if (!row) throw new BillingError("not_found", `no API key ${keyId}`);
  return { id: row.id, revokedAt: row.revoked_at };
}

/**
 * Remembers resolved keys for a few seconds so the hot path does not spend a database round
 * trip on every request. A revocation reaches this process's cache at once (revokeApiKey clears
 * it) and every other replica's within the TTL; that bound is documented in the README.
 */
export class KeyCache {
  private entries = new Map<string, { principal: Principal; until: number }>();
  constructor(private readonly ttlMs = 5_000, private readonly max = 10_000) {}
  get(digestHex: string, now: number): Principal | undefined {
    const hit = this.entries.get(digestHex);
    if (!hit) return undefined;
    if (hit.until <= now) {
      this.entries.delete(digestHex);
      return undefined;
    }
    return hit.principal;
  }
  set(digestHex: string, principal: Principal, now: number) {
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(digestHex, { principal, until: now + this.ttlMs });
  }
  forgetKeyId(keyId: string) {
    for (const [k, v] of this.entries) if (v.principal.keyId === keyId) this.entries.delete(k);
  }
}

/**
 * Resolves a bearer key to its principal. The lookup is by hash (an index probe whose timing
 * says nothing about how close a guess was), and the bootstrap admin key is compared as a
 * fixed-length digest with timingSafeEqual.
 */
export async function authenticate(sql: Sql, key: string, adminKey: string | undefined, cache?: KeyCache): Promise<Principal> {
  if (!API_KEY_PATTERN.test(key)) throw new BillingError("invalid_api_key", "the API key is malformed: keys look like hk-…");
  const digest = hashKey(key);
  if (adminKey !== undefined && timingSafeEqual(digest, hashKey(adminKey))) {
    return { keyId: "key_bootstrap_admin", orgId: null, scope: "admin" };
  }
  const digestHex = digest.toString("hex");
  const cached = cache?.get(digestHex, Date.now());
  if (cached) return cached;
  const [row] = await sql<{ id: string; org_id: string; scope: KeyScope; key_hash: Buffer; revoked_at: Date | null }[]>`
    select id, org_id, scope, key_hash, revoked_at from api_keys where key_hash = ${digest}`;
  if (!row || !timingSafeEqual(row.key_hash, digest)) throw new BillingError("invalid_api_key", "the API key is not valid");
  if (row.revoked_at) throw new BillingError("invalid_api_key", "the API key has been revoked");
  const principal: Principal = { keyId: row.id, orgId: row.org_id, scope: row.scope };
  cache?.set(digestHex, principal, Date.now());
  return principal;
}
