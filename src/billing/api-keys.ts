import { createHash, timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { API_KEY_PATTERN } from "../config.js";
import { newId, randomBase62 } from "../ids.js";
import { type BillingContext, type TransactionContext, withTransaction } from "./context.js";

export const KeyScopes = ["org", "gateway", "admin"] as const;
export type KeyScope = (typeof KeyScopes)[number];

/**
 * What an org key may do beyond reading and paying: `keys:write` creates and revokes the
 * organization's keys (/v1/billing/keys). A key without it is read-only there. Gateway and admin
 * keys have none (their scope is their power). A key's permissions are fixed at creation.
 */
export const KeyPermissions = ["keys:write"] as const;
export type KeyPermission = (typeof KeyPermissions)[number];

/**
 * Who a request speaks for. The bootstrap admin key has no organization and no row; gateway keys
 * are platform credentials and have no organization either (the request names the one it acts for).
 */
export type Principal = { keyId: string; orgId: string | null; scope: KeyScope; permissions: readonly KeyPermission[] };

/** Active keys an organization may hold at once through the self-serve routes (operators are not limited). */
export const MAX_ACTIVE_ORG_KEYS = 100;

export { API_KEY_PATTERN };

export function hashKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

export type CreatedKey = {
  id: string;
  key: string;
  orgId: string | null;
  scope: KeyScope;
  name: string | null;
  permissions: KeyPermission[];
  prefix: string;
  createdAt: Date;
};

/** A key as listed: never its secret, which exists only in CreatedKey. */
export type ApiKeySummary = {
  id: string;
  orgId: string | null;
  scope: KeyScope;
  name: string | null;
  permissions: KeyPermission[];
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
};

type KeyRow = {
  id: string;
  org_id: string | null;
  scope: KeyScope;
  name: string | null;
  permissions: KeyPermission[];
  key_prefix: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
};

const summary = (r: KeyRow): ApiKeySummary => ({
  id: r.id,
  orgId: r.org_id,
  scope: r.scope,
  name: r.name,
  permissions: r.permissions,
  prefix: r.key_prefix,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

function newSecret() {
  const key = `hk-${randomBase62(40)}`; // ~238 bits of entropy
  return { key, id: newId("key"), prefix: key.slice(0, 9) };
}

/** Refuses gateway keys: they are platform credentials, made by createGatewayKey, never under an organization. */
function orgScoped(scope: KeyScope): asserts scope is "org" | "admin" {
  if (scope === "gateway")
    throw new BillingError(
      "invalid_request",
      "gateway keys are platform credentials and belong to no organization: create them with POST /v1/admin/keys",
      { details: { param: "scope" } },
    );
}

/**
 * An operator's key for an organization (org or admin scope; never gateway). An org key has
 * keys:write unless `permissions` says otherwise (the first key of an organization must be able to
 * make the others). The plaintext exists only in the return value: shown once, stored as a hash.
 */
export async function createApiKey(
  ctx: BillingContext,
  input: { orgId: string; scope: KeyScope; name?: string | null; permissions?: readonly KeyPermission[] },
): Promise<CreatedKey> {
  const { scope } = input;
  orgScoped(scope);
  const permissions = scope === "org" ? [...(input.permissions ?? KeyPermissions)] : [];
  const name = input.name ?? null;
  const { key, id, prefix } = newSecret();
  const [row] = await ctx.sql<{ created_at: Date }[]>`
    insert into api_keys (id, org_id, scope, key_hash, key_prefix, name, permissions)
    select ${id}, id, ${scope}, ${hashKey(key)}, ${prefix}, ${name}, ${permissions}::text[]
    from organizations where id = ${input.orgId}
    returning created_at`;
  if (!row) throw new BillingError("not_found", `no organization ${input.orgId}`);
  return { id, key, orgId: input.orgId, scope, name, permissions, prefix, createdAt: row.created_at };
}

/** A gateway key: a platform credential that acts for any organization the gateway names, owned by none. */
export async function createGatewayKey(ctx: BillingContext, input: { name: string }): Promise<CreatedKey> {
  const { key, id, prefix } = newSecret();
  const [row] = await ctx.sql<{ created_at: Date }[]>`
    insert into api_keys (id, org_id, scope, key_hash, key_prefix, name)
    values (${id}, null, 'gateway', ${hashKey(key)}, ${prefix}, ${input.name})
    returning created_at`;
  if (!row) throw new Error("insert … returning gave no row");
  return {
    id,
    key,
    orgId: null,
    scope: "gateway",
    name: input.name,
    permissions: [],
    prefix,
    createdAt: row.created_at,
  };
}

/**
 * The keys that act beyond one organization's own data, newest first, revoked ones included
 * with their revocation time: gateway keys, and admin keys (made under an organization, and
 * listed nowhere else), so that an operator can find and revoke every one, including one minted
 * with a stolen admin key.
 */
export async function listPlatformKeys(ctx: BillingContext): Promise<ApiKeySummary[]> {
  const rows = await ctx.sql<KeyRow[]>`
    select id, org_id, scope, name, permissions, key_prefix, created_at, last_used_at, revoked_at
    from api_keys where org_id is null or scope = 'admin' order by created_at desc, id desc`;
  return rows.map(summary);
}

/** An organization's keys, newest first, revoked ones included (a key's history stays visible). */
export async function listOrgKeys(ctx: BillingContext, input: { orgId: string }): Promise<ApiKeySummary[]> {
  const rows = await ctx.sql<KeyRow[]>`
    select id, org_id, scope, name, permissions, key_prefix, created_at, last_used_at, revoked_at
    from api_keys where org_id = ${input.orgId} and scope = 'org' order by created_at desc, id desc`;
  return rows.map(summary);
}

function requireKeysWrite(principal: Principal) {
  if (principal.scope !== "org" || !principal.orgId || !principal.permissions.includes("keys:write"))
    throw new BillingError("insufficient_scope", "managing keys needs an org key with the keys:write permission");
}

/**
 * Locks the organization's key set: self-serve creates and revokes of one organization take turns,
 * so the limit and the last-writer rule hold under any race. Also checks, under that lock, that
 * the requesting key is still live (a key revoked a moment ago cannot act on the set).
 */
async function lockKeySet(sql: TransactionContextSql, orgId: string, requesterKeyId: string) {
  const [org] = await sql`select id from organizations where id = ${orgId} for no key update`;
  if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
  const [me] = await sql<{ revoked_at: Date | null }[]>`
    select revoked_at from api_keys where id = ${requesterKeyId} and org_id = ${orgId}`;
  if (!me || me.revoked_at) throw new BillingError("invalid_api_key", "the API key has been revoked");
}
type TransactionContextSql = TransactionContext["sql"];

/**
 * An org key made by one of the organization's own keys (`POST /v1/billing/keys`): always scope
 * org, whatever the request says, and with permissions that are a subset of its maker's, so no
 * chain of self-serve keys ever gains a power the first did not have.
 */
export async function createOrgKey(
  ctx: BillingContext,
  input: { principal: Principal; name: string; permissions?: readonly KeyPermission[] },
): Promise<CreatedKey> {
  const { principal } = input;
  requireKeysWrite(principal);
  const orgId = principal.orgId as string;
  const permissions = [...new Set(input.permissions ?? principal.permissions)].sort() as KeyPermission[];
  const beyond = permissions.filter((p) => !principal.permissions.includes(p));
  if (beyond.length)
    throw new BillingError("insufficient_scope", `this key cannot grant ${beyond.join(", ")}: it does not have it`);
  return withTransaction(ctx, async (tx) => {
    await lockKeySet(tx.sql, orgId, principal.keyId);
    const [count] = await tx.sql<{ active: number }[]>`
      select count(*)::int as active from api_keys where org_id = ${orgId} and scope = 'org' and revoked_at is null`;
    if ((count?.active ?? 0) >= MAX_ACTIVE_ORG_KEYS)
      throw new BillingError(
        "conflict",
        `an organization holds at most ${MAX_ACTIVE_ORG_KEYS} active keys: revoke one before making another`,
      );
    return createApiKey(tx, { orgId, scope: "org", name: input.name, permissions });
  });
}

/**
 * Revokes one of the organization's keys (`DELETE /v1/billing/keys/{id}`). Another
 * organization's key, a gateway or admin key, or an unknown id are all 404: the answer says
 * nothing about keys that are not the caller's. The organization's last live keys:write key is
 * refused (409): revoking it would leave nobody who could make keys but an operator; make another
 * keys:write key first. Revoking a revoked key answers its revocation again.
 */
export async function revokeOrgKey(
  ctx: BillingContext,
  input: { principal: Principal; keyId: string },
): Promise<{ id: string; revokedAt: Date }> {
  const { principal, keyId } = input;
  requireKeysWrite(principal);
  const orgId = principal.orgId as string;
  return withTransaction(ctx, async (tx) => {
    await lockKeySet(tx.sql, orgId, principal.keyId);
    const [key] = await tx.sql<{ permissions: KeyPermission[]; revoked_at: Date | null }[]>`
      select permissions, revoked_at from api_keys where id = ${keyId} and org_id = ${orgId} and scope = 'org'`;
    if (!key) throw new BillingError("not_found", `no API key ${keyId}`);
    if (key.revoked_at) return { id: keyId, revokedAt: key.revoked_at };
    if (key.permissions.includes("keys:write")) {
      const [writers] = await tx.sql<{ others: number }[]>`
        select count(*)::int as others from api_keys
        where org_id = ${orgId} and scope = 'org' and revoked_at is null and id <> ${keyId}
          and permissions @> array['keys:write']::text[]`;
      if ((writers?.others ?? 0) === 0)
        throw new BillingError(
          "conflict",
          "this is the organization's last key with keys:write: create another keys:write key before revoking it",
        );
    }
    return revokeApiKey(tx, { keyId });
  });
}

/** A key's last_used_at is written at most once per this interval (per key, across every replica). */
export const KEY_USED_INTERVAL_MS = 60_000;

/**
 * Keeps api_keys.last_used_at cheaply: this process sends at most one write per key per
 * KEY_USED_INTERVAL_MS (the map below answers the rest from memory), and the write itself only
 * changes a row whose last_used_at is older than the interval, so replicas together still write
 * each key at most once per interval (a racing second writer waits on the row lock, re-reads the
 * new time and matches nothing). A minute of staleness is what "last used" promises.
 */
export class KeyUsage {
  private next = new Map<string, number>();
  constructor(private readonly max = 10_000) {}
  async touch(sql: Sql, keyId: string, now: Date): Promise<boolean> {
    const at = now.getTime();
    const due = this.next.get(keyId);
    if (due !== undefined && due > at) return false;
    this.next.delete(keyId);
    if (this.next.size >= this.max) this.next.delete(this.next.keys().next().value as string);
    this.next.set(keyId, at + KEY_USED_INTERVAL_MS);
    const cutoff = new Date(at - KEY_USED_INTERVAL_MS);
    const rows = await sql`
      update api_keys set last_used_at = ${now}
      where id = ${keyId} and revoked_at is null and (last_used_at is null or last_used_at <= ${cutoff})
      returning id`;
    return rows.length > 0;
  }
}

/** Every revocation is announced on this channel when it commits; each API process evicts the key. */
export const KEY_REVOCATIONS_CHANNEL = "api_key_revocations";

export async function revokeApiKey(
  ctx: BillingContext,
  input: { keyId: string },
): Promise<{ id: string; revokedAt: Date }> {
  const { sql } = ctx;
  const { keyId } = input;
  const now = ctx.clock();
  // coalesce keeps the first revocation time: revoking twice is harmless and tells the same story.
  // One statement, so the notice is sent exactly when the revocation commits.
  const [row] = await sql<{ id: string; revoked_at: Date }[]>`
    with revoked as (update api_keys set revoked_at = coalesce(revoked_at, ${now}) where id = ${keyId} returning id, revoked_at)
    select id, revoked_at, pg_notify(${KEY_REVOCATIONS_CHANNEL}, id) as notified from revoked`;
  if (!row) throw new BillingError("not_found", `no API key ${keyId}`);
  return { id: row.id, revokedAt: row.revoked_at };
}

/** The longest any process trusts a key it read from PostgreSQL, counted from the start of that lookup. */
export const KEY_CACHE_TTL_MS = 1_000;

/**
 * How long a process answers a key PostgreSQL did not accept (unknown or revoked) without asking
 * again. A revoked key never becomes valid, and a new key cannot have been refused before it was
 * created (it is 40 random characters, shown once by its creation), so this only bounds how long a
 * wrong key is refused from memory, not how long a good one could be.
 */
export const KEY_REFUSAL_TTL_MS = 5_000;

/** Taken before a key is read from PostgreSQL and handed back to KeyCache.set with the answer. */
export type KeyLookup = { epoch: number; startedAt: number };

/**
 * Remembers resolved keys for at most a second so the hot path does not spend a database round
 * trip on every request. A revocation is refused by every replica within 1 s of its commit:
 * - the revoking process evicts the key before answering, and every process evicts it when the
 *   revocation's NOTIFY arrives (`listen`), normally within milliseconds;
 * - a lookup that read the key before the revocation committed cannot store its answer after the
 *   eviction: every revocation heard bumps `epoch`, and `set` stores only an answer whose lookup
 *   began in the current epoch;
 * - if notices are lost (the LISTEN connection down), an entry still expires KEY_CACHE_TTL_MS
 *   after the lookup that made it began, which was before the commit; on reconnection the
 *   whole cache is dropped.
 * Times are performance.now() milliseconds: wall-clock steps cannot stretch an entry's life.
 */
export class KeyCache {
  private entries = new Map<string, { principal: Principal; until: number }>();
  /** Keys refused, with the reason, for KEY_REFUSAL_TTL_MS: random keys only ever push out the oldest. */
  private refusals = new Map<string, { message: string; until: number }>();
  private epoch = 0;
  constructor(
    private readonly ttlMs = KEY_CACHE_TTL_MS,
    private readonly max = 10_000,
    private readonly refusalTtlMs = KEY_REFUSAL_TTL_MS,
    private readonly maxRefusals = 10_000,
  ) {}
  get(digestHex: string, now: number): Principal | undefined {
    const hit = this.entries.get(digestHex);
    if (!hit) return undefined;
    if (hit.until <= now) {
      this.entries.delete(digestHex);
      return undefined;
    }
    return hit.principal;
  }
  begin(now: number): KeyLookup {
    return { epoch: this.epoch, startedAt: now };
  }
  set(digestHex: string, principal: Principal, lookup: KeyLookup) {
    // A revocation was heard since this lookup began: its answer may predate it.
    if (lookup.epoch !== this.epoch) return;
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(digestHex, { principal, until: lookup.startedAt + this.ttlMs });
  }
  /** Why PostgreSQL refused this key, if it did less than KEY_REFUSAL_TTL_MS ago. */
  refusal(digestHex: string, now: number): string | undefined {
    const hit = this.refusals.get(digestHex);
    if (!hit) return undefined;
    if (hit.until <= now) {
      this.refusals.delete(digestHex);
      return undefined;
    }
    return hit.message;
  }
  refuse(digestHex: string, message: string, now: number) {
    this.refusals.delete(digestHex);
    if (this.refusals.size >= this.maxRefusals) this.refusals.delete(this.refusals.keys().next().value as string);
    this.refusals.set(digestHex, { message, until: now + this.refusalTtlMs });
  }
  get size() {
    return { keys: this.entries.size, refusals: this.refusals.size };
  }
  revoked(keyId: string) {
    this.epoch++;
    for (const [k, v] of this.entries) if (v.principal.keyId === keyId) this.entries.delete(k);
  }
  clear() {
    this.epoch++;
    this.entries.clear();
    this.refusals.clear();
  }

  /**
   * Evicts every key revoked anywhere, as its revocation commits, until the returned function is
   * called. Each (re)connection of the LISTEN connection drops the whole cache: revocations
   * announced while it was down were not heard.
   */
  async listen(sql: Sql): Promise<() => Promise<void>> {
    const listener = await sql.listen(
      KEY_REVOCATIONS_CHANNEL,
      (keyId) => this.revoked(keyId),
      () => this.clear(),
    );
    return () => listener.unlisten();
  }
}

/**
 * Resolves a bearer key to its principal. The lookup is by hash (an index probe whose timing
 * says nothing about how close a guess was), and the bootstrap admin key is compared as a
 * fixed-length digest with timingSafeEqual.
 */
export async function authenticate(
  sql: Sql,
  key: string,
  adminKey: string | undefined,
  cache?: KeyCache,
  /** Runs before PostgreSQL is asked (not for a key the cache answers); may throw to refuse. */
  beforeLookup?: () => Promise<void>,
): Promise<Principal> {
  if (!API_KEY_PATTERN.test(key))
    throw new BillingError("invalid_api_key", "the API key is malformed: keys look like hk-…");
  const digest = hashKey(key);
  if (adminKey !== undefined && timingSafeEqual(digest, hashKey(adminKey))) {
    return { keyId: "key_bootstrap_admin", orgId: null, scope: "admin", permissions: [] };
  }
  const digestHex = digest.toString("hex");
  const startedAt = performance.now();
  const cached = cache?.get(digestHex, startedAt);
  if (cached) return cached;
  const refused = cache?.refusal(digestHex, startedAt);
  if (refused) throw new BillingError("invalid_api_key", refused);
  await beforeLookup?.();
  const lookup = cache?.begin(startedAt);
  const [row] = await sql<
    {
      id: string;
      org_id: string | null;
      scope: KeyScope;
      permissions: KeyPermission[];
      key_hash: Buffer;
      revoked_at: Date | null;
    }[]
  >`select id, org_id, scope, permissions, key_hash, revoked_at from api_keys where key_hash = ${digest}`;
  const refusal =
    !row || !timingSafeEqual(row.key_hash, digest)
      ? "the API key is not valid"
      : row.revoked_at
        ? "the API key has been revoked"
        : undefined;
  if (!row || refusal) {
    cache?.refuse(digestHex, refusal ?? "the API key is not valid", startedAt);
    throw new BillingError("invalid_api_key", refusal ?? "the API key is not valid");
  }
  const principal: Principal = { keyId: row.id, orgId: row.org_id, scope: row.scope, permissions: row.permissions };
  if (cache && lookup) cache.set(digestHex, principal, lookup);
  return principal;
}
