import { createHash, timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { API_KEY_PATTERN } from "../config.js";
import { newId, randomBase62 } from "../ids.js";
import type { BillingContext } from "./context.js";

export const KeyScopes = ["org", "gateway", "admin"] as const;
export type KeyScope = (typeof KeyScopes)[number];

/** Who a request speaks for. The bootstrap admin key has no organization and no row. */
export type Principal = { keyId: string; orgId: string | null; scope: KeyScope };

export { API_KEY_PATTERN };

export function hashKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

export type CreatedKey = { id: string; key: string; orgId: string; scope: KeyScope; prefix: string; createdAt: Date };

/** The plaintext exists only in this return value: it is shown once and stored as a hash. */
export async function createApiKey(
  ctx: BillingContext,
  input: { orgId: string; scope: KeyScope },
): Promise<CreatedKey> {
  const { sql } = ctx;
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
    return { keyId: "key_bootstrap_admin", orgId: null, scope: "admin" };
  }
  const digestHex = digest.toString("hex");
  const startedAt = performance.now();
  const cached = cache?.get(digestHex, startedAt);
  if (cached) return cached;
  const refused = cache?.refusal(digestHex, startedAt);
  if (refused) throw new BillingError("invalid_api_key", refused);
  await beforeLookup?.();
  const lookup = cache?.begin(startedAt);
  const [row] = await sql<{ id: string; org_id: string; scope: KeyScope; key_hash: Buffer; revoked_at: Date | null }[]>`
    select id, org_id, scope, key_hash, revoked_at from api_keys where key_hash = ${digest}`;
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
  const principal: Principal = { keyId: row.id, orgId: row.org_id, scope: row.scope };
  if (cache && lookup) cache.set(digestHex, principal, lookup);
  return principal;
}
