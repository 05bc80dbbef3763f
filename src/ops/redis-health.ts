import type { Cluster, Redis, RedisOptions } from "ioredis";
import type { Logger } from "pino";

/**
 * Reconnection with backoff: 200 ms, 400 ms, 800 ms … up to 5 s between attempts, for as long as
 * Redis stays down (ioredis' default retries every 2 s at most, and BullMQ's every 1–20 s).
 */
export const redisRetryStrategy: NonNullable<RedisOptions["retryStrategy"]> = (times) =>
  Math.min(100 * 2 ** Math.min(times, 10), 5_000);

/** Errors that mean "Redis cannot be reached", as opposed to a bad command or a bug. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  if (
    e.code &&
    ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EPIPE", "EAI_AGAIN"].includes(e.code)
  )
    return true;
  // The cluster client's: no seed answers, no slot map, or a command that outlived a failover.
  return /connect ETIMEDOUT|Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|None of startup nodes is available|Failed to refresh slots cache|CLUSTERDOWN|Too many Cluster redirections/i.test(
    e.message ?? "",
  );
}

type ErrorEmitter = { on(event: "error", listener: (err: Error) => void): unknown };

/** A lost cluster node found again this soon after its line (by another client of the process) is the same outage. */
const SAME_OUTAGE_MS = 60_000;

/**
 * Whether this process can reach Redis, told once per change: a Redis that goes away is one error
 * line (not one per reconnection attempt of each client, queue and worker), and its return is one
 * info line. `/healthz` and `/readyz` read `up`.
 */
export class RedisHealth {
  private state: "unknown" | "up" | "down" = "unknown";
  private since = Date.now();
  private readonly clients: (Redis | Cluster)[] = [];
  /**
   * Cluster nodes this process cannot reach, by host:port, with the cluster clients that found them
   * so (a process has several: a queue's, a worker's blocking one); forgotten when every one of
   * those clients' slot maps has dropped them. `told`: this outage's line was written.
   */
  private readonly downNodes = new Map<string, { clusters: Set<Cluster>; told: boolean }>();
  /** When each node's unreachable line was last written (performance.now()). */
  private readonly toldAt = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly where: string,
  ) {}

  /** Up when no connection error was seen since the last `ready` and every watched client is connected now. */
  get up(): boolean {
    return this.state === "up" && this.clients.every((c) => c.status === "ready") && !this.mastersDown();
  }

  /** A master this process cannot reach still holds slots: their commands wait (a failover is due). */
  private mastersDown(): boolean {
    for (const [key, { clusters }] of this.downNodes)
      for (const cluster of clusters) if (servesSlots(cluster, key)) return true;
    return false;
  }

  /** The client's own events decide the state: `ready` is up, a connection error is down (logged once). */
  watch(client: Redis | Cluster): this {
    this.clients.push(client);
    if (client.status === "ready") this.markUp();
    client.on("ready", () => this.markUp());
    client.on("error", (err: Error) => this.onError(err, "redis client"));
    if ((client as Cluster).isCluster) this.watchClusterNodes(client as Cluster);
    return this;
  }

  /**
   * A cluster client stays `ready` while one node is gone: each node that stops answering is one
   * error line naming it, and the slot map's refresh after a failover (the node no longer a
   * master) is one info line. A cluster-wide error (no slot map) is up again at the next refresh.
   * The process's clients find a lost node each on its own, and one whose slot map is still stale
   * can find it after another has seen the failover: within a minute of its last line, that is
   * the same outage, and not told again.
   */
  private watchClusterNodes(cluster: Cluster) {
    cluster.on("node error", (err: Error, key: string) => {
      if (!isConnectionError(err)) return this.logger.error({ err, redis_node: key }, "redis cluster node error");
      const known = this.downNodes.get(key);
      if (known) return void known.clusters.add(cluster);
      const now = performance.now();
      const last = this.toldAt.get(key);
      const told = last === undefined || now - last >= SAME_OUTAGE_MS;
      this.downNodes.set(key, { clusters: new Set([cluster]), told });
      if (!told) return;
      this.toldAt.set(key, now);
      this.logger.error(
        { redis: this.where, redis_node: key, reason: err.message },
        "redis cluster node unreachable: commands for its slots wait until it is back or a replica takes over",
      );
    });
    // Forgotten (and told) once no slot map of the clients that lost it names it a master: a
    // replica took over. Its connection being dropped from the pool ("-node") is not that: the
    // next command for its slots makes a new one, which fails again.
    cluster.on("refresh", () => {
      for (const [key, down] of this.downNodes) {
        if (!down.clusters.has(cluster) || servesSlots(cluster, key)) continue;
        down.clusters.delete(cluster);
        if (down.clusters.size > 0) continue;
        this.downNodes.delete(key);
        if (!down.told) continue;
        this.logger.info(
          { redis: this.where, redis_node: key },
          "redis cluster node no longer serves slots (failed over)",
        );
      }
      if (cluster.status === "ready") this.markUp();
    });
    // A command that failed during a failover marks the state down, and a cluster client emits no
    // `ready` after it: a PING that answers (and no master unreachable) is the way back up.
    const recheck = setInterval(() => {
      if (this.state !== "down" || cluster.status !== "ready") return;
      cluster
        .ping()
        .then(() => {
          if (!this.mastersDown()) this.markUp();
        })
        .catch(() => {});
    }, 2_000);
    recheck.unref();
    cluster.once("end", () => clearInterval(recheck));
  }

  /** Queues and workers re-emit their connections' errors: those count here, other errors are logged as they come. */
  watchErrors(emitter: ErrorEmitter, what: string): this {
    emitter.on("error", (err) => this.onError(err, what));
    return this;
  }

  private onError(err: Error, what: string) {
    if (isConnectionError(err)) this.markDown(err.message);
    else this.logger.error({ err, source: what }, `${what} error`);
  }

  private markUp() {
    if (this.state === "down") {
      this.logger.info({ redis: this.where, down_seconds: (Date.now() - this.since) / 1000 }, "redis is back");
    }
    if (this.state !== "up") this.since = Date.now();
    this.state = "up";
  }

  private markDown(reason: string) {
    if (this.state === "down") return;
    this.state = "down";
    this.since = Date.now();
    this.logger.error(
      { redis: this.where, reason },
      "redis is down: reconnecting with backoff (up to 5 s apart); /readyz answers 503 until it is back",
    );
  }
}

/** Whether the cluster's slot map (as this client last read it) names `key` as the master of any slot. */
function servesSlots(cluster: Cluster, key: string): boolean {
  const slots = (cluster as unknown as { slots: (string[] | undefined)[] }).slots;
  return slots.some((nodes) => nodes?.[0] === key);
}
