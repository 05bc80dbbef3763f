import type { Logger } from "pino";
import { BillingError } from "../errors.js";
import type { Sql } from "./client.js";
import { isConnectionError } from "./connection-errors.js";
import { parseLsn, primaryWalPosition, type WritePositions } from "./write-positions.js";

export type ReadTarget = "replica" | "primary";
/**
 * Why a read went where it went: `caught_up` (the replica had replayed the org's last write),
 * `behind` (it had not), `replica_down` (it failed recently: not asked until the retry time),
 * `replica_failed` (it failed on this read, which was run again on the primary),
 * `not_found_on_replica` (the replica did not have the object, the primary was asked),
 * `positions_unavailable` (Redis did not say where the org's last write is).
 */
export type ReadReason =
  | "caught_up"
  | "behind"
  | "replica_down"
  | "replica_failed"
  | "not_found_on_replica"
  | "positions_unavailable";
/** Why the replica could not serve: `unreachable` (connection), `error` (the query failed there), `not_a_replica` (not in recovery). */
export type FallbackReason = "unreachable" | "error" | "not_a_replica";

/** What the routing reports (observability/metrics.ts counts it). */
export type ReadRoutingObserver = {
  routed(target: ReadTarget, reason: ReadReason): void;
  fellBack(reason: FallbackReason): void;
  replicaUp(up: boolean): void;
};

/** After the replica failed, it is asked again only after this long. */
const RETRY_REPLICA_AFTER_MS = 5_000;
/** The replica's replay position is re-read at most this often while it is far enough for the read at hand. */
const REPLAY_KNOWN_FOR_MS = 1_000;
/** At most one warning per this long while Redis cannot say where writes are. */
const WARN_EVERY_MS = 10_000;

/**
 * Read-your-writes over a streaming replica. A read for an org goes to the replica only when the
 * replica has replayed the primary's WAL up to the org's last recorded write (WritePositions);
 * otherwise, and whenever the replica fails, to the primary, so a paused or lagging replica can
 * make a list older than writes by others (the gateway's metering, the workers), never older than
 * the org's own writes through the API. Balances and everything not read through `read` stay on
 * the primary.
 */
export class ReadRouting {
  readonly #primary: Sql;
  readonly #replica: Sql;
  readonly #positions: WritePositions;
  readonly #logger: Logger;
  readonly #observer: ReadRoutingObserver | undefined;
  readonly #retryAfterMs: number;
  #downUntil = Number.NEGATIVE_INFINITY;
  #up = true;
  #replayed: { lsn: bigint; at: number } | undefined;
  #probe: Promise<bigint> | undefined;
  #positionsWarnedAt = Number.NEGATIVE_INFINITY;

  constructor(opts: {
    primary: Sql;
    replica: Sql;
    positions: WritePositions;
    logger: Logger;
    observer?: ReadRoutingObserver;
    retryAfterMs?: number;
  }) {
    this.#primary = opts.primary;
    this.#replica = opts.replica;
    this.#positions = opts.positions;
    this.#logger = opts.logger;
    this.#observer = opts.observer;
    this.#retryAfterMs = opts.retryAfterMs ?? RETRY_REPLICA_AFTER_MS;
    this.#observer?.replicaUp(true);
  }

  /**
   * Runs a read for `orgId` on the replica when it has the org's last write, else on the primary.
   * A replica that fails (away, or the query fails there) costs the read a second run on the
   * primary, never an error; a BillingError `not_found` there is asked of the primary too (an
   * object written by someone else may not have been replayed yet). Other BillingErrors are the
   * answer.
   */
  async read<T>(orgId: string, run: (sql: Sql) => Promise<T>): Promise<T> {
    const reason = await this.#route(orgId);
    if (reason !== "caught_up") {
      this.#observer?.routed("primary", reason);
      return run(this.#primary);
    }
    let result: T;
    try {
      result = await run(this.#replica);
    } catch (err) {
      if (err instanceof BillingError) {
        if (err.code !== "not_found") throw err;
        this.#observer?.routed("primary", "not_found_on_replica");
        return run(this.#primary);
      }
      this.#failed(err, isConnectionError(err) ? "unreachable" : "error");
      this.#observer?.routed("primary", "replica_failed");
      return run(this.#primary);
    }
    this.#recovered();
    this.#observer?.routed("replica", "caught_up");
    return result;
  }

  /**
   * Records that `orgId` (null: no single org) just wrote: its later reads wait for the replica to
   * replay up to here. Call it after the write committed. Never throws: the write is done, and a
   * failure is logged (the org's reads may then see the replica's lag until the next write).
   */
  async noteWrite(orgId: string | null): Promise<void> {
    try {
      await this.#positions.raise(orgId, await primaryWalPosition(this.#primary));
    } catch (err) {
      this.#logger.warn({ err, org_id: orgId }, "could not record a write's WAL position for read routing");
    }
  }

  async #route(orgId: string): Promise<ReadReason> {
    if (performance.now() < this.#downUntil) {
      this.#observer?.fellBack("unreachable");
      return "replica_down";
    }
    let required: bigint;
    try {
      required = await this.#positions.required(orgId);
    } catch (err) {
      const now = performance.now();
      if (now - this.#positionsWarnedAt >= WARN_EVERY_MS) {
        this.#positionsWarnedAt = now;
        this.#logger.warn(
          { err },
          "read routing: Redis cannot say where orgs' last writes are; reads go to the primary",
        );
      }
      return "positions_unavailable";
    }
    let replayed: bigint | null;
    try {
      replayed = await this.#replayedAtLeast(required);
    } catch (err) {
      this.#failed(err, isConnectionError(err) ? "unreachable" : "error");
      return "replica_down";
    }
    if (replayed === null) return "replica_down";
    return replayed >= required ? "caught_up" : "behind";
  }

  /**
   * The replica's replay position, re-read unless one read within REPLAY_KNOWN_FOR_MS is already
   * at `required` (a replay position only grows, so a recent one is a safe lower bound). Null when
   * the server is not a replica (not in recovery), which is then treated as away.
   */
  async #replayedAtLeast(required: bigint): Promise<bigint | null> {
    const known = this.#replayed;
    if (known && known.lsn >= required && performance.now() - known.at < REPLAY_KNOWN_FOR_MS) return known.lsn;
    this.#probe ??= this.#readReplayPosition().finally(() => {
      this.#probe = undefined;
    });
    const lsn = await this.#probe;
    if (lsn < 0n) {
      this.#failed(new Error("DATABASE_READ_URL is not in recovery (not a streaming replica)"), "not_a_replica");
      return null;
    }
    this.#recovered();
    return lsn;
  }

  async #readReplayPosition(): Promise<bigint> {
    const at = performance.now();
    const [row] = await this.#replica<{ lsn: string | null }[]>`select pg_last_wal_replay_lsn()::text as lsn`;
    if (!row?.lsn) return -1n;
    const lsn = parseLsn(row.lsn);
    if (!this.#replayed || this.#replayed.at <= at) this.#replayed = { lsn, at };
    return lsn;
  }

  #failed(err: unknown, reason: FallbackReason) {
    this.#observer?.fellBack(reason);
    this.#replayed = undefined;
    // A query that failed on a reachable replica (e.g. cancelled by a conflict with recovery) says
    // nothing about the next one; a replica that cannot be reached is left alone for a while.
    if (reason === "error") {
      this.#logger.warn({ err }, "a read failed on the read replica; it was run on the primary");
      return;
    }
    this.#downUntil = performance.now() + this.#retryAfterMs;
    if (this.#up) {
      this.#up = false;
      this.#observer?.replicaUp(false);
      this.#logger.warn(
        { err, retry_after_ms: this.#retryAfterMs },
        "read replica unavailable: reads go to the primary until it answers again",
      );
    }
  }

  #recovered() {
    if (this.#up) return;
    this.#up = true;
    this.#observer?.replicaUp(true);
    this.#logger.info("read replica answers again: read-mostly endpoints read from it");
  }
}
