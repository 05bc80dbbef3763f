import type { Cluster, Redis } from "ioredis";
import type { Sql } from "./client.js";

/**
 * A WAL position of the primary as a bigint (a pg_lsn `16/B374D848` is two 32-bit halves in hex),
 * so positions compare as the WAL orders them.
 */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!match) throw new Error(`not a pg_lsn: ${lsn}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/**
 * Where the primary's WAL ends now. Taken after a write's transaction committed, it is at or past
 * that commit's record (the insert position, not the write or flush one, so an asynchronous commit
 * not yet written out is covered too).
 */
export async function primaryWalPosition(primary: Sql): Promise<bigint> {
  const [row] = await primary<{ lsn: string }[]>`select pg_current_wal_insert_lsn()::text as lsn`;
  if (!row) throw new Error("pg_current_wal_insert_lsn returned no row");
  return parseLsn(row.lsn);
}

/** Fixed-width hex: Redis' Lua compares these as strings, which then order as the positions do. */
const toKey = (lsn: bigint) => lsn.toString(16).padStart(16, "0");

/** Sets KEYS[1] to ARGV[1] unless it holds a later position already; keeps it ARGV[2] seconds. */
const RAISE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if (not current) or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1`;

/** Redis taking longer than this counts as Redis being unavailable for that call. */
const REDIS_TIMEOUT_MS = 250;
/** How long a position is kept after the org's last write: a replica further behind than this must be taken out. */
const KEEP_SECONDS = 86_400;

/**
 * Per organization, the primary's WAL position after its last write through the API, shared by
 * every API replica in Redis (`{prefix}:rw:<org>`); `{prefix}:rw:*` holds the position after the
 * last write that named no single organization (an org created, the card processor's webhook, an
 * operator action across orgs), which every org's reads must also wait for. Positions only rise.
 */
export class WritePositions {
  readonly #redis: Redis | Cluster;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(redis: Redis | Cluster, prefix: string, opts: { timeoutMs?: number } = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#timeoutMs = opts.timeoutMs ?? REDIS_TIMEOUT_MS;
  }

  /** Raises `orgId`'s position (null: every org's) to `lsn`. Throws when Redis is unavailable. */
  async raise(orgId: string | null, lsn: bigint): Promise<void> {
    await this.#withTimeout(this.#redis.eval(RAISE_SCRIPT, 1, this.#key(orgId), toKey(lsn), KEEP_SECONDS));
  }

  /** The position a replica must have replayed before it may answer `orgId`'s reads (0n: none recorded). Throws when Redis is unavailable. */
  async required(orgId: string): Promise<bigint> {
    // Two GETs, not an MGET: under Redis Cluster the keys may live in different slots.
    const [own, all] = await this.#withTimeout(
      Promise.all([this.#redis.get(this.#key(orgId)), this.#redis.get(this.#key(null))]),
    );
    const a = own ? BigInt(`0x${own}`) : 0n;
    const b = all ? BigInt(`0x${all}`) : 0n;
    return a > b ? a : b;
  }

  #key(orgId: string | null): string {
    return `${this.#prefix}:rw:${orgId ?? "*"}`;
  }

  /**
   * The API's client queues commands while Redis is away and retries them forever: wait at most
   * the timeout (a queued raise that lands later is still right: positions only rise).
   */
  async #withTimeout<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    work.catch(() => {});
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
