import { writeFileSync } from "node:fs";
import net from "node:net";
import { GatewayClient, GatewayConnectionError } from "../client/gateway.js";
import type { LoadGeneratorArgs } from "./support.js";

/**
 * Drives the API over HTTP from its own process (so its CPU is not the API's), with keep-alive
 * connections, for a fixed time. Prints one JSON line of counts, latencies and its own CPU time.
 *   pairs:  authorize then settle that hold (one usage event), per virtual user
 *   ingest: batches of usage events
 * With `client`, the pairs go through the gateway's client (client/gateway.ts) instead: every
 * virtual user's calls are batched with the others' into shared HTTP requests, and the latency
 * recorded is each call's as its caller sees it (batching delay included).
 *
 * Each virtual user owns one keep-alive connection and has one request in flight on it. The
 * client is a minimal HTTP/1.1 implementation over a TCP socket rather than node:http: the
 * load generator shares the machine's two cores with the API and PostgreSQL, and node:http's
 * client costs about 4× more CPU per request, which would be taken from the system under test.
 */
const args = JSON.parse(process.argv[2]!) as LoadGeneratorArgs;
const url = new URL(args.base);

type Response = { status: number; body: string };

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** One keep-alive HTTP/1.1 connection; requests on it are sequential. Reconnects if the server closed it. */
class Connection {
  private socket!: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private pending: { resolve: (r: Response) => void; reject: (e: Error) => void } | null = null;
  private ready!: Promise<void>;

  constructor() {
    this.connect();
  }

  private connect() {
    const socket = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.ready = new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    this.ready.catch(() => {}); // reported through the request that awaits it
    socket.on("data", (chunk: Buffer) => {
      if (this.socket !== socket) return;
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    const fail = (err: Error) => {
      if (this.socket !== socket) return; // an old connection, already replaced
      const p = this.pending;
      this.pending = null;
      p?.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed by the server")));
  }

  async post(path: string, body: string): Promise<Response> {
    if (this.socket.destroyed || this.socket.writableEnded) this.connect();
    await this.ready;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${args.key}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  private parse() {
    const end = this.buffer.indexOf(CRLFCRLF);
    if (end < 0) return;
    const head = this.buffer.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let body: string;
    let consumed: number;
    if (length) {
      const n = Number(length[1]);
      if (this.buffer.length < end + 4 + n) return;
      body = this.buffer.toString("utf8", end + 4, end + 4 + n);
      consumed = end + 4 + n;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const parts: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const eol = this.buffer.indexOf("\r\n", at);
        if (eol < 0) return;
        const size = parseInt(this.buffer.toString("latin1", at, eol), 16);
        if (this.buffer.length < eol + 2 + size + 2) return;
        if (size === 0) {
          consumed = eol + 4;
          break;
        }
        parts.push(this.buffer.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString("utf8");
    } else {
      body = ""; // no body (e.g. 204)
      consumed = end + 4;
    }
    this.buffer = this.buffer.subarray(consumed);
    const p = this.pending;
    this.pending = null;
    if (p) p.resolve({ status, body });
    else console.error(`load generator: unsolicited response ${status}`);
  }

  close() {
    this.socket.destroy();
  }
}

const latencies: number[] = [];
/** BENCH_TRACE_DIR (bench/support.ts): each call through the client, as `<start, ms since the epoch> <call> <ms>`. */
const callTrace: string[] | undefined = process.env.BENCH_TRACE_DIR ? [] : undefined;
/** The same latencies by call (pairs): the settles' tail can differ from the authorizations'. */
const latenciesOf = { authorize: [] as number[], settle: [] as number[] };
let ok = 0;
// Pacing (args.rate, pairs mode): each virtual user starts its pairs on a fixed schedule of
// concurrency / rate seconds apart; one that falls behind starts the next pair at once (no pair
// is skipped), so a slow spell shows as a lower achieved rate and longer latencies.
const paceMs = args.rate ? (1000 * args.concurrency) / args.rate : 0;
// Interim reports (args.report_every_s): one JSON line per interval, counted since the last one.
let intervalLatencies: number[] = [];
let intervalOk = 0;
let intervalFailed = 0;
let failed = 0;
let events = 0;
let seq = 0;
const started = performance.now();
const cpuStart = process.cpuUsage();
const deadline = started + args.seconds * 1000;
const org = () => args.orgs[Math.floor(Math.random() * args.orgs.length)]!;

let errors = 0;
let lastError = "";
/** A request; a transport error counts as a failed request (status 0) instead of ending the run. */
async function timed(conn: Connection, path: string, body: string, call?: keyof typeof latenciesOf): Promise<Response> {
  const t0 = performance.now();
  try {
    const res = await conn.post(path, body);
    const ms = performance.now() - t0;
    latencies.push(ms);
    if (call) latenciesOf[call].push(ms);
    if (args.report_every_s) intervalLatencies.push(ms);
    return res;
  } catch (err) {
    errors++;
    lastError = String(err);
    return { status: 0, body: "" };
  }
}

const HOLD_ID = /"hold_id":"([^"]+)"/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pairUser(conn: Connection, index: number) {
  // Paced users start spread over one period, not all at once.
  let nextStart = performance.now() + (paceMs * index) / args.concurrency;
  while (performance.now() < deadline) {
    if (paceMs) {
      const wait = nextStart - performance.now();
      if (wait > 0) await sleep(wait);
      nextStart += paceMs;
      if (performance.now() >= deadline) break;
    }
    const orgId = org();
    const auth = await timed(
      conn,
      "/v1/billing/authorize",
      `{"org_id":"${orgId}","product":"llm","model":"zen-pro","estimate":{"input_tokens":1000,"output_tokens":500}}`,
      "authorize",
    );
    const holdId = auth.status === 201 ? HOLD_ID.exec(auth.body)?.[1] : undefined;
    if (!holdId) {
      failed++;
      intervalFailed++;
      continue;
    }
    const event = {
      idempotency_key: `${args.tag}-${process.pid}-${++seq}`,
      org_id: orgId,
      timestamp: new Date().toISOString(),
      product: "llm",
      model: "zen-pro",
      quantities: { input_tokens: 900, output_tokens: 450 },
      hold_id: holdId,
    };
    const settle = await timed(conn, "/v1/billing/usage", JSON.stringify({ events: [event] }), "settle");
    if (settle.status === 200 && settle.body.includes('"recorded":1')) {
      ok++;
      intervalOk++;
    } else {
      failed++;
      intervalFailed++;
    }
  }
}

async function ingestUser(conn: Connection) {
  while (performance.now() < deadline) {
    const batch = Array.from({ length: args.batch }, () => ({
      idempotency_key: `${args.tag}-${process.pid}-${++seq}`,
      org_id: org(),
      timestamp: new Date().toISOString(),
      product: "api",
      quantities: { requests: 1 },
    }));
    const res = await timed(conn, "/v1/billing/usage", JSON.stringify({ events: batch }));
    const recorded = res.status === 200 ? Number(/"recorded":(\d+)/.exec(res.body)?.[1] ?? 0) : 0;
    events += recorded;
    if (recorded === args.batch) ok++;
    else failed++;
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

let intervalStarted = performance.now();
const reporter = args.report_every_s
  ? setInterval(() => {
      const now = performance.now();
      const sorted = intervalLatencies.sort((a, b) => a - b);
      console.log(
        JSON.stringify({
          interval: true,
          seconds: (now - intervalStarted) / 1000,
          ok: intervalOk,
          failed: intervalFailed,
          per_s: intervalOk / ((now - intervalStarted) / 1000),
          p50_ms: percentile(sorted, 50),
          p99_ms: percentile(sorted, 99),
        }),
      );
      intervalLatencies = [];
      intervalOk = 0;
      intervalFailed = 0;
      intervalStarted = now;
    }, args.report_every_s * 1000)
  : undefined;

/** A call through the client; an answer (a hold, or the API's refusal) is timed, a lost connection counts as a transport error. */
async function timedCall<T>(kind: keyof typeof latenciesOf, call: () => Promise<T>): Promise<T | undefined> {
  const t0 = performance.now();
  const record = () => {
    const ms = performance.now() - t0;
    latencies.push(ms);
    latenciesOf[kind].push(ms);
    callTrace?.push(`${(performance.timeOrigin + t0).toFixed(3)} ${kind} ${ms.toFixed(3)}`);
  };
  try {
    const value = await call();
    record();
    return value;
  } catch (err) {
    if (err instanceof GatewayConnectionError) errors++;
    else record();
    lastError = String(err);
    return undefined;
  }
}

async function clientPairUser(client: GatewayClient) {
  while (performance.now() < deadline) {
    const orgId = org();
    const hold = await timedCall("authorize", () =>
      client.authorize({
        org_id: orgId,
        product: "llm",
        model: "zen-pro",
        estimate: { input_tokens: 1000, output_tokens: 500 },
      }),
    );
    if (!hold) {
      failed++;
      continue;
    }
    const settled = await timedCall("settle", () =>
      client.settle(hold.hold_id, {
        idempotency_key: `${args.tag}-${process.pid}-${++seq}`,
        org_id: orgId,
        product: "llm",
        model: "zen-pro",
        quantities: { input_tokens: 900, output_tokens: 450 },
      }),
    );
    if (settled?.status === "recorded") ok++;
    else failed++;
  }
}

let httpRequests = 0;
if (args.client) {
  const client = new GatewayClient({
    baseUrl: args.base,
    key: args.key,
    maxDelayMs: args.clientDelayMs,
    maxBatch: args.clientMaxBatch,
  });
  await Promise.all(Array.from({ length: args.concurrency }, () => clientPairUser(client)));
  httpRequests = client.requestsSent;
  await client.close();
} else {
  const connections = Array.from({ length: args.concurrency }, () => new Connection());
  await Promise.all(connections.map((conn, i) => (args.mode === "pairs" ? pairUser(conn, i) : ingestUser(conn))));
  for (const c of connections) c.close();
}
if (reporter) clearInterval(reporter);
if (callTrace && callTrace.length > 0)
  writeFileSync(`${process.env.BENCH_TRACE_DIR}/calls-${process.pid}.txt`, `${callTrace.join("\n")}\n`);
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
latencies.sort((a, b) => a - b);
const pct = (p: number) => percentile(latencies, p);
for (const list of Object.values(latenciesOf)) list.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    mode: args.mode,
    seconds,
    ok,
    failed,
    events,
    requests: latencies.length,
    http_requests: args.client ? httpRequests : latencies.length,
    per_s: (args.mode === "pairs" ? ok : events) / seconds,
    p50_ms: pct(50),
    p99_ms: pct(99),
    // Pairs: the p99 of each call apart.
    ...(latenciesOf.authorize.length > 0 ? { p99_authorize_ms: percentile(latenciesOf.authorize, 99) } : {}),
    ...(latenciesOf.settle.length > 0 ? { p99_settle_ms: percentile(latenciesOf.settle, 99) } : {}),
    cpu_ms: (cpu.user + cpu.system) / 1000,
    transport_errors: errors,
  }),
);
if (errors > 0) console.error(`load generator: ${errors} transport errors, last: ${lastError}`);
