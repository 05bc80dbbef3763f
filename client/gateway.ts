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
/** The largest request body the API takes (src/http/app.ts). */
export const MAX_GATEWAY_REQUEST_BYTES = 4 * 1024 * 1024;

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
  /**
   * A request's body stays under this many bytes (default and most: the API's 4 MiB): a batch
   * that would pass it goes as several requests, and one call larger than it is refused alone.
   */
  maxRequestBytes?: number;
  /** Keep-alive connections to the API at most; batches beyond them queue (default 4). */
  maxConnections?: number;
  /** How often a batch is sent again after its connection failed, for its calls with idempotency keys (default 3). */
  retries?: number;
  /** A batch not wholly answered this long after it was sent counts as a failed connection (default 10,000 ms). */
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
    // By the status when the error came as a response; by its code when it came inside a batch's
    // answer (a usage event's result carries no status): the codes of the 5xx and 429 answers.
    this.retryable =
      (status !== undefined && (status >= 500 || status === 429)) ||
      [
        "internal_error",
        "rate_limited",
        "not_configured",
        "upstream_unavailable",
        "processor_unavailable",
        "database_unavailable",
      ].includes(detail.code);
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

/** One call: its JSON, its size in bytes, and whether that JSON carries an idempotency key. */
type Entry = {
  body: string;
  bytes: number;
  keyed: boolean;
  resolve: (value: never) => void;
  reject: (err: Error) => void;
};
/**
 * A batch endpoint. `answer` settles each call from its result (the API's answer, one result per
 * call, in order) and returns the calls whose result it could not read: no outcome is known for them.
 */
type Kind = { path: string; field: "requests" | "events"; answer: (entries: Entry[], results: unknown[]) => Entry[] };
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
  private readonly maxRequestBytes: number;
  /**
   * The timestamp each keyed settle without one of its own was sent with, while its outcome is
   * unknown (it failed with GatewayConnectionError): calling settle again with the same key then
   * sends the same event, which the API answers with the first outcome instead of refusing the
   * key as reused with another timestamp. Kept for the last 10,000 such settles.
   */
  private readonly unsettledStamps = new Map<string, string>();
  private readonly queues = new Map<Kind, { entries: Entry[]; cancelTimer: (() => void) | undefined }>();
  private readonly inFlight = new Set<Promise<void>>();
  /** HTTP requests sent (batches, retries included): what the batching saves shows here. */
  requestsSent = 0;

  private readonly authorizeKind: Kind = {
    path: "/v1/billing/authorize/batch",
    field: "requests",
    answer: (entries, results) =>
      entries.filter((entry, i) => {
        const r = results[i] as components["schemas"]["AuthorizeBatchResult"] | undefined;
        if (isObject(r?.hold) && (r.status === 200 || r.status === 201)) entry.resolve(r.hold as never);
        else if (isObject(r?.error)) entry.reject(new GatewayError(r.error, r.status));
        else return true;
        return false;
      }),
  };

  private readonly usageKind: Kind = {
    path: "/v1/billing/usage",
    field: "events",
    answer: (entries, results) =>
      entries.filter((entry, i) => {
        const r = results[i] as UsageEventResult | undefined;
        if (isObject(r) && (r.status === "recorded" || r.status === "duplicate")) entry.resolve(r as never);
        else if (isObject(r?.error)) entry.reject(new GatewayError(r.error, undefined));
        else return true;
        return false;
      }),
  };

  constructor(opts: GatewayClientOptions) {
    this.url = new URL(opts.baseUrl);
    this.transport = this.url.protocol === "https:" ? https : http;
    this.maxDelayMs = opts.maxDelayMs ?? 0;
    this.maxBatch = opts.maxBatch ?? 256;
    this.retries = opts.retries ?? 3;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxRequestBytes = opts.maxRequestBytes ?? MAX_GATEWAY_REQUEST_BYTES;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > MAX_GATEWAY_BATCH)
      throw new RangeError(`maxBatch must be a whole number from 1 to ${MAX_GATEWAY_BATCH}`);
    if (!(this.maxDelayMs >= 0)) throw new RangeError("maxDelayMs must be 0 or more");
    if (!(this.maxRequestBytes > 0 && this.maxRequestBytes <= MAX_GATEWAY_REQUEST_BYTES))
      throw new RangeError(`maxRequestBytes must be more than 0 and at most ${MAX_GATEWAY_REQUEST_BYTES}`);
    if (!(this.timeoutMs > 0)) throw new RangeError("timeoutMs must be more than 0");
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

  /**
   * Settles `holdId` with what the request really used. Without a timestamp the event is stamped
   * now; after a GatewayConnectionError, settling again with the same idempotency key reuses the
   * first attempt's stamp, so the API answers with that attempt's outcome.
   */
  settle(holdId: string, usage: SettleUsage): Promise<UsageEventResult> {
    if (!isObject(usage)) return Promise.reject(badInput("settle takes the usage as an object"));
    let event: UsageEvent;
    try {
      event = { timestamp: "", ...usage, hold_id: holdId };
    } catch (err) {
      return Promise.reject(badInput(`the usage cannot be read: ${(err as Error).message}`));
    }
    if (event.timestamp) return this.reportUsage(event);
    const remembered = this.unsettledStamps.size > 0 ? this.unsettledStamps.get(stampKey(event)) : undefined;
    event.timestamp = remembered ?? new Date().toISOString();
    const stamped = event;
    return this.reportUsage(stamped).then(
      (result) => {
        if (remembered !== undefined) this.unsettledStamps.delete(stampKey(stamped));
        return result;
      },
      (err: unknown) => {
        if (err instanceof GatewayConnectionError && err.keyed) {
          const key = stampKey(stamped);
          this.unsettledStamps.delete(key); // re-inserted as the newest
          this.unsettledStamps.set(key, stamped.timestamp);
          for (const oldest of this.unsettledStamps.keys()) {
            if (this.unsettledStamps.size <= 10_000) break;
            this.unsettledStamps.delete(oldest);
          }
        } else if (remembered !== undefined) this.unsettledStamps.delete(stampKey(stamped));
        throw err;
      },
    );
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
    // The idempotency key is read as it is written into the JSON (after any toJSON or getter):
    // whether the call is sent again after a failed connection depends on what the API received.
    let root: unknown;
    let key: unknown;
    let body: string | undefined;
    try {
      body = JSON.stringify(item, function (this: unknown, name, value: unknown) {
        if (name === "") root = value;
        else if (name === "idempotency_key" && this === root) key = value;
        return typeof value === "bigint" ? value.toString() : value;
      });
    } catch (err) {
      return Promise.reject(badInput(`the call cannot be sent as JSON: ${(err as Error).message}`));
    }
    if (body === undefined || !body.startsWith("{"))
      return Promise.reject(badInput("the call must be written as a JSON object (check its toJSON)"));
    const bytes = Buffer.byteLength(body);
    if (bytes + ENVELOPE_BYTES > this.maxRequestBytes)
      return Promise.reject(
        new GatewayError(
          {
            code: "payload_too_large",
            message: `the call is ${bytes} bytes as JSON, more than a request may carry (${this.maxRequestBytes})`,
            type: "invalid_request_error",
          },
          413,
        ),
      );
    const sentBody = body;
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(kind);
      if (!queue) {
        queue = { entries: [], cancelTimer: undefined };
        this.queues.set(kind, queue);
      }
      queue.entries.push({
        body: sentBody,
        bytes,
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
      // Up to maxBatch calls, and fewer when their JSON would pass maxRequestBytes (each call
      // alone fits: enqueue refused any that does not).
      let n = 0;
      let bytes = ENVELOPE_BYTES;
      for (const e of queue.entries) {
        if (n === this.maxBatch || (n > 0 && bytes + e.bytes + 1 > this.maxRequestBytes)) break;
        bytes += e.bytes + 1;
        n++;
      }
      const entries = queue.entries.splice(0, n);
      // send() answers every call; should it throw all the same, no call is left waiting.
      const sending = this.send(kind, entries, 0).catch((err: unknown) => {
        for (const e of entries) e.reject(err instanceof Error ? err : new Error(String(err)));
      });
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
    let unanswered = entries;
    if (reply && reply.status === 200) {
      // A 200 whose results cannot be read (from a proxy, say) says nothing of what was applied:
      // its calls are treated as if no answer came.
      const results = resultsOf(reply.body, entries.length);
      if (results instanceof Error) failure = results;
      else {
        unanswered = kind.answer(entries, results);
        if (unanswered.length === 0) return;
        failure = new Error(`the API's answer has no readable result for ${unanswered.length} of its calls`);
      }
    } else if (reply && !RETRIED_STATUSES.has(reply.status)) {
      // The whole batch was refused (a bad key, a rate limit): every call gets that answer.
      const error = errorOf(reply);
      for (const e of entries) e.reject(error);
      return;
    }
    // No answer, or one a retry may fix: only calls with idempotency keys are safe to send again.
    const cause = failure ?? new Error(`the API answered ${reply?.status}`);
    const keyed = unanswered.filter((e) => e.keyed);
    for (const e of unanswered)
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
      // One deadline for the whole exchange: an answer trickling in never ends it.
      let settled = false;
      const finish = (done: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        done();
      };
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
          res.on("end", () =>
            finish(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") })),
          );
          res.on("error", (err) => finish(() => reject(err)));
          res.on("close", () => finish(() => reject(new Error("the connection closed before the answer ended"))));
        },
      );
      const deadline = setTimeout(() => {
        const err = new Error(`no whole answer within ${this.timeoutMs} ms`);
        finish(() => reject(err));
        req.destroy(err);
      }, this.timeoutMs);
      req.on("error", (err) => finish(() => reject(err)));
      req.end(body);
    });
  }
}

/** A settle's entry in unsettledStamps: its organization and idempotency key. */
function stampKey(event: UsageEvent): string {
  return `${String(event.org_id)}\u0000${String(event.idempotency_key)}`;
}

/** The bytes a batch's JSON adds around its calls: `{"requests":[` and `]}`. */
const ENVELOPE_BYTES = 16;

/** The results of a batch's answer, one per call, or why they cannot be read. */
function resultsOf(text: string, calls: number): unknown[] | Error {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return err as Error;
  }
  const results = isObject(body) ? (body as { results?: unknown }).results : undefined;
  if (!Array.isArray(results) || results.length !== calls)
    return new Error(`the API's answer has no list of ${calls} results`);
  return results;
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

function badInput(message: string) {
  return new GatewayError({ code: "invalid_request", message, type: "invalid_request_error" }, 400);
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
