import { Cluster, Redis } from "ioredis";
import { parseRedisUrl } from "../redis-url.js";
import { redisRetryStrategy } from "./redis-health.js";

/** What the API, the workers and the rate limiter talk to: one Redis, or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * How long a command may ride out a cluster's failover before it fails: a master that stops is
 * replaced after `cluster-node-timeout` (15 s by default) and an election; meanwhile its slots
 * answer CLUSTERDOWN or refuse connections, and ioredis retries every 500 ms, up to 120 times (60 s).
 */
const FAILOVER_RETRY_DELAY_MS = 500;
const FAILOVER_MAX_REDIRECTIONS = 120;

/**
 * The client REDIS_URL names, as every process makes it: commands wait while the connection is
 * re-made (`maxRetriesPerRequest: null`, which BullMQ's blocking workers require), reconnection
 * backs off up to 5 s apart. A cluster gets ioredis' Cluster client with the same settings for
 * each node, and rides out a failover (CLUSTERDOWN, a refused connection to a stopped master) by
 * retrying against the refreshed slot map instead of failing the command at once.
 */
export function createRedisClient(url: string): RedisClient {
  const target = parseRedisUrl(url);
  if (target.kind === "single") {
    return new Redis(target.url, { maxRetriesPerRequest: null, retryStrategy: redisRetryStrategy });
  }
  return new Cluster(target.nodes, {
    // Not retryStrategy here: the node connections' default (none) lets a stopped node go, and the
    // slot map, refreshed on the next MOVED or refused connection, names its successor.
    redisOptions: {
      maxRetriesPerRequest: null,
      username: target.username,
      password: target.password,
      ...(target.tls ? { tls: {} } : {}),
    },
    clusterRetryStrategy: redisRetryStrategy,
    // No ready check (CLUSTER INFO after the slot map is read): when it fails, during a failover
    // (cluster_state:fail until a replica is promoted, or the INFO sent to the stopped master),
    // ioredis reconnects by itself and the promise of the `connect()` that ran the check is never
    // settled (redis/ioredis#709). BullMQ awaits that promise when it re-makes a worker's blocking
    // connection after a bzpopmin that the master's loss left unanswered, and the worker then takes
    // no job again. Without the check the client is ready once it has a slot map; commands for a
    // slot without a live master wait on CLUSTERDOWN or a refused connection (the retries below).
    enableReadyCheck: false,
    retryDelayOnFailover: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnClusterDown: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnTryAgain: FAILOVER_RETRY_DELAY_MS,
    maxRedirections: FAILOVER_MAX_REDIRECTIONS,
    slotsRefreshTimeout: 3_000,
  });
}

export const isCluster = (client: RedisClient): client is Cluster =>
  (client as { isCluster?: boolean }).isCluster === true;
