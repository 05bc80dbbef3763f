import http from "node:http";
import https from "node:https";
import type { components } from "./openapi.js";

export type AuthorizeRequest = components["schemas"]["AuthorizeRequest"];
export type Hold = components["schemas"]["Hold"];
export type UsageEvent = components["schemas"]["UsageEvent"];
export type UsageEventResult = components["schemas"]["UsageEventResult"];
/** What settles a hold: a usage event without its hold_id (given apart) and, optionally, its timestamp (default now). */
export type SettleUsage = Omit<UsageEvent, "hold_id" | "timestamp"> & { timestamp?: string };
type ErrorDetail = components["schemas"]["Error"]["error"];

/** The most the API takes in one batch (MAX_AUTHORIZATIONS_PER_BATCH, MAX_EVENTS_PER_BATCH). */
export const MAX_GATEWAY_BATCH = 1000;

export type GatewayClientOptions = {
  /** The API's base URL, e.g. `http://billing.internal:3000`. */
  baseUrl: string;
  /** A gateway-scope `hk-…` key. */
  key: string;
  /**
   * How long a call waits for others to share its HTTP request, in ms. The default, 0, sends at
   * the end of the current turn of the event loop: the calls made in that turn (e.g. for the
   * requests that arrived together) share a request and none waits on a timer. A timer of 1 ms
   * cost a third of the pairs/s in bench:metering (bench/RESULTS-metering.md, 2026-12-03).
   */
  maxDelayMs?: number;
  /** A batch goes out at once when it holds this many calls (default 256, at most 1000). */
  maxBatch?: number;
  /** Keep-alive connections to the API at most; batches beyond them queue (default 4). */
  maxConnections?: number;
  /** How often a batch is sent again after its connection failed, for its calls with idempotency keys (default 3). */
  retries?: number;
  /** A batch with no answer after this long counts as a failed connection (default 10,000 ms). */
  timeoutMs?: number;
};

/**
 * The API refused this one call: `code` is the API's stable error code (`insufficient_balance`,
 * `invalid_request`, …), `status` the HTTP status the single endpoint would have answered.
 * `retryable`: the same call (with its idempotency key) may succeed later.
 */
export class GatewayError extends Error {
  override name = "GatewayError";
  readonly code: string;
  readonly status: number | undefined;
  readonly type: string | undefined;
  readonly param: string | undefined;
  readonly requestId: string | undefined;
  readonly budget: ErrorDetail["budget"];
  readonly retryable: boolean;

  constructor(detail: { code: string; message: string } & Partial<ErrorDetail>, status: number | undefined) {
    super(detail.message);
    this.code = detail.code;
    this.status = status;
    this.type = detail.type;
    this.param = detail.param;
    this.requestId = detail.request_id;
    this.budget = detail.budget;
    this.retryable =
      (status !== undefined && (status >= 500 || status === 429)) ||
      ["internal_error", "rate_limited", "not_configured", "upstream_unavailable"].includes(detail.code);
  }
}

/**
 * No answer came for this call: the connection failed (after the retries its idempotency key
 * allowed) or timed out. The call may or may not have taken effect; `keyed` says whether calling
 * again with the same idempotency key is safe (it answers the first outcome, charging nothing twice).
 */
export class GatewayConnectionError extends Error {
  override name = "GatewayConnectionError";
  constructor(
    message: string,
    readonly keyed: boolean,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

type Entry = { body: string; keyed: boolean; resolve: (value: never) => void; reject: (err: Error) => void };
type Kind = { path: string; field: "requests" | "events"; answer: (entries: Entry[], body: unknown) => void };
type Reply = { status: number; body: string };

/**
 * The gateway's client of the metering endpoints. Each call returns a promise for that call
 * alone; calls made in the same turn of the event loop (or within `maxDelayMs`) go to the API as one request
 * (POST /v1/billing/authorize/batch, POST /v1/billing/usage) over kept-alive connections, which
 * spares both sides the cost of an HTTP request per call. One call's refusal rejects that call
 * only (GatewayError). A batch whose connection fails is sent again with the calls that carry an
 * idempotency key (the API answers a known key with its first outcome: no second hold, no second
 * charge); a call without one fails with GatewayConnectionError, as it may have been applied.
 */
export class GatewayClient {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly headers: Record<string, string>;
  private readonly maxDelayMs: number;
  private readonly maxBatch: number;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly queues = new Map<Kind, { entries: Entry[]; cancelTimer: (() => void) | undefined }>();
  private readonly inFlight = new Set<Promise<void>>();
  /** HTTP requests sent (batches, retries included): what the batching saves shows here. */
  requestsSent = 0;

  private readonly authorizeKind: Kind = {
    path: "/v1/billing/authorize/batch",
    field: "requests",
    answer: (entries, body) => {
      const results = (body as { results?: components["schemas"]["AuthorizeBatchResult"][] }).results;
      entries.forEach((entry, i) => {
        const r = results?.[i];
        if (r?.hold && (r.status === 200 || r.status === 201)) entry.resolve(r.hold as never);
        else if (r?.error) entry.reject(new GatewayError(r.error, r.status));
        else entry.reject(new GatewayError(unreadable(i), undefined));
      });
    },
  };

  private readonly usageKind: Kind = {
    path: "/v1/billing/usage",
    field: "events",
    answer: (entries, body) => {
      const results = (body as { results?: UsageEventResult[] }).results;
      entries.forEach((entry, i) => {
        const r = results?.[i];
        if (r && (r.status === "recorded" || r.status === "duplicate")) entry.resolve(r as never);
        else if (r?.error) entry.reject(new GatewayError(r.error, undefined));
        else entry.reject(new GatewayError(unreadable(i), undefined));
      });
    },
  };

  constructor(opts: GatewayClientOptions) {
    this.url = new URL(opts.baseUrl);
    this.transport = this.url.protocol === "https:" ? https : http;
    this.maxDelayMs = opts.maxDelayMs ?? 0;
    this.maxBatch = opts.maxBatch ?? 256;
    this.retries = opts.retries ?? 3;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > MAX_GATEWAY_BATCH)
      throw new RangeError(`maxBatch must be a whole number from 1 to ${MAX_GATEWAY_BATCH}`);
    if (!(this.maxDelayMs >= 0)) throw new RangeError("maxDelayMs must be 0 or more");
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: opts.maxConnections ?? 4 });
    this.headers = {
      authorization: `Bearer ${opts.key}`,
      "content-type": "application/json",
      host: this.url.host,
    };
  }

  /** Holds the priced estimate; rejects with GatewayError (e.g. `insufficient_balance`, status 402). */
  authorize(req: AuthorizeRequest): Promise<Hold> {
    return this.enqueue(this.authorizeKind, req);
  }

  /** Records one usage event (with `hold_id`, it settles that hold). */
  reportUsage(event: UsageEvent): Promise<UsageEventResult> {
    return this.enqueue(this.usageKind, event);
  }

  /** Settles `holdId` with what the request really used. */
  settle(holdId: string, usage: SettleUsage): Promise<UsageEventResult> {
    if (!isObject(usage)) return Promise.reject(badInput("settle takes the usage as an object"));
    return this.reportUsage({ timestamp: new Date().toISOString(), ...usage, hold_id: holdId });
  }

  /** Sends what is queued, waits for every answer, then closes the connections. */
  async close(): Promise<void> {
    for (const kind of this.queues.keys()) this.flush(kind);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.agent.destroy();
  }

  private enqueue<T>(kind: Kind, item: unknown): Promise<T> {
    if (!isObject(item))
      return Promise.reject(badInput(`${kind.field === "requests" ? "authorize" : "reportUsage"} takes an object`));
    let body: string;
    try {
      body = JSON.stringify(item, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
    } catch (err) {
      return Promise.reject(badInput(`the call cannot be sent as JSON: ${(err as Error).message}`));
    }
    const key = (item as { idempotency_key?: unknown }).idempotency_key;
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(kind);
      if (!queue) {
        queue = { entries: [], cancelTimer: undefined };
        this.queues.set(kind, queue);
      }
      queue.entries.push({
        body,
        keyed: typeof key === "string" && key.length > 0,
        resolve: resolve as (v: never) => void,
        reject,
      });
      if (queue.entries.length >= this.maxBatch) this.flush(kind);
      else if (queue.cancelTimer === undefined) queue.cancelTimer = this.later(() => this.flush(kind));
    });
  }

  /** Runs `fn` after maxDelayMs (0: once this turn of the event loop is done); returns its cancel. */
  private later(fn: () => void): () => void {
    if (this.maxDelayMs > 0) {
      const timer = setTimeout(fn, this.maxDelayMs);
      return () => clearTimeout(timer);
    }
    const immediate = setImmediate(fn);
    return () => clearImmediate(immediate);
  }

  private flush(kind: Kind) {
    const queue = this.queues.get(kind);
    if (!queue) return;
    queue.cancelTimer?.();
    queue.cancelTimer = undefined;
    while (queue.entries.length > 0) {
      const entries = queue.entries.splice(0, this.maxBatch);
      const sending = this.send(kind, entries, 0);
      this.inFlight.add(sending);
      sending.finally(() => this.inFlight.delete(sending));
    }
  }

  private async send(kind: Kind, entries: Entry[], attempt: number): Promise<void> {
    let reply: Reply | undefined;
    let failure: unknown;
    try {
      reply = await this.post(kind.path, `{"${kind.field}":[${entries.map((e) => e.body).join(",")}]}`);
    } catch (err) {
      failure = err;
    }
    if (reply && reply.status === 200) {
      let body: unknown;
      try {
        body = JSON.parse(reply.body);
      } catch (err) {
        failure = err;
      }
      if (failure === undefined) return kind.answer(entries, body);
    } else if (reply && !RETRIED_STATUSES.has(reply.status)) {
      // The whole batch was refused (a bad key, a rate limit): every call gets that answer.
      const error = errorOf(reply);
      for (const e of entries) e.reject(error);
      return;
    }
    // No answer, or one a retry may fix: only calls with idempotency keys are safe to send again.
    const cause = failure ?? new Error(`the API answered ${reply?.status}`);
    const keyed = entries.filter((e) => e.keyed);
    for (const e of entries)
      if (!e.keyed)
        e.reject(
          new GatewayConnectionError(
            "no answer from the billing API; without an idempotency key this call is not retried, and may have been applied",
            false,
            { cause },
          ),
        );
    if (keyed.length === 0) return;
    if (attempt >= this.retries) {
      for (const e of keyed)
        e.reject(
          new GatewayConnectionError(
            `no answer from the billing API after ${attempt + 1} attempts; calling again with the same idempotency key is safe`,
            true,
            { cause },
          ),
        );
      return;
    }
    await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
    return this.send(kind, keyed, attempt + 1);
  }

  private post(path: string, body: string): Promise<Reply> {
    this.requestsSent++;
    return new Promise((resolve, reject) => {
      const req = this.transport.request(
        {
          agent: this.agent,
          method: "POST",
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          path: `${this.url.pathname.replace(/\/$/, "")}${path}`,
          headers: { ...this.headers, "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}

/** Answers worth sending again (with idempotency keys): the API or a proxy in front of it was briefly unavailable. */
const RETRIED_STATUSES = new Set([502, 503, 504]);

function errorOf(reply: Reply): GatewayError {
  try {
    const detail = (JSON.parse(reply.body) as { error?: ErrorDetail }).error;
    if (detail?.code) return new GatewayError(detail, reply.status);
  } catch {
    // not the envelope: described below
  }
  return new GatewayError(
    { code: reply.status >= 500 ? "internal_error" : "invalid_request", message: `the API answered ${reply.status}` },
    reply.status,
  );
}

function unreadable(i: number) {
  return { code: "internal_error", message: `the API's answer has no result for item ${i} of its batch` };
}

function badInput(message: string) {
  return new GatewayError({ code: "invalid_request", message, type: "invalid_request_error" }, 400);
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
