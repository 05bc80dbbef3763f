import type { Redis, RedisOptions } from "ioredis";
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
  return /connect ETIMEDOUT|Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET/i.test(e.message ?? "");
}

type ErrorEmitter = { on(event: "error", listener: (err: Error) => void): unknown };

/**
 * Whether this process can reach Redis, told once per change: a Redis that goes away is one error
 * line (not one per reconnection attempt of each client, queue and worker), and its return is one
 * info line. `/healthz` and `/readyz` read `up`.
 */
export class RedisHealth {
  private state: "unknown" | "up" | "down" = "unknown";
  private since = Date.now();
  private readonly clients: Redis[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly where: string,
  ) {}

  /** Up when no connection error was seen since the last `ready` and every watched client is connected now. */
  get up(): boolean {
    return this.state === "up" && this.clients.every((c) => c.status === "ready");
  }

  /** The client's own events decide the state: `ready` is up, a connection error is down (logged once). */
  watch(client: Redis): this {
    this.clients.push(client);
    if (client.status === "ready") this.markUp();
    client.on("ready", () => this.markUp());
    client.on("error", (err: Error) => this.onError(err, "redis client"));
    return this;
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
