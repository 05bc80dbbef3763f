import http from "node:http";

/**
 * Drives the API over HTTP from its own process (so its CPU is not the API's), with keep-alive
 * connections, for a fixed time. Prints one JSON line of counts and latencies.
 *   pairs:  authorize then settle that hold (one usage event), per virtual user
 *   ingest: batches of usage events
 */
type Args = { base: string; key: string; mode: "pairs" | "ingest"; orgs: string[]; seconds: number; concurrency: number; batch: number; tag: string };
const args = JSON.parse(process.argv[2]!) as Args;
const url = new URL(args.base);
const agent = new http.Agent({ keepAlive: true, maxSockets: args.concurrency });

function post(path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path, method: "POST", agent, headers: { authorization: `Bearer ${args.key}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const latencies: number[] = [];
let ok = 0;
let failed = 0;
let events = 0;
let seq = 0;
const started = performance.now();
const deadline = started + args.seconds * 1000;
const org = () => args.orgs[Math.floor(Math.random() * args.orgs.length)]!;

async function timed(path: string, body: string) {
  const t0 = performance.now();
  const res = await post(path, body);
  latencies.push(performance.now() - t0);
  return res;
}

async function pairUser() {
  while (performance.now() < deadline) {
    const orgId = org();
    const auth = await timed("/v1/billing/authorize", JSON.stringify({ org_id: orgId, product: "llm", model: "zen-pro", estimate: { input_tokens: 1000, output_tokens: 500 } }));
    if (auth.status !== 201) {
      failed++;
      continue;
    }
    const holdId = (JSON.parse(auth.body) as { hold_id: string }).hold_id;
    const event = { idempotency_key: `${args.tag}-${process.pid}-${++seq}`, org_id: orgId, timestamp: new Date().toISOString(), product: "llm", model: "zen-pro", quantities: { input_tokens: 900, output_tokens: 450 }, hold_id: holdId };
    const settle = await timed("/v1/billing/usage", JSON.stringify({ events: [event] }));
    if (settle.status === 200 && settle.body.includes('"recorded":1')) ok++;
    else failed++;
  }
}

async function ingestUser() {
  while (performance.now() < deadline) {
    const batch = Array.from({ length: args.batch }, () => ({
      idempotency_key: `${args.tag}-${process.pid}-${++seq}`,
      org_id: org(),
      timestamp: new Date().toISOString(),
      product: "api",
      quantities: { requests: 1 },
    }));
    const res = await timed("/v1/billing/usage", JSON.stringify({ events: batch }));
    const recorded = res.status === 200 ? Number(/"recorded":(\d+)/.exec(res.body)?.[1] ?? 0) : 0;
    events += recorded;
    if (recorded === args.batch) ok++;
    else failed++;
  }
}

await Promise.all(Array.from({ length: args.concurrency }, () => (args.mode === "pairs" ? pairUser() : ingestUser())));
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
console.log(JSON.stringify({ mode: args.mode, seconds, ok, failed, events, requests: latencies.length, per_s: (args.mode === "pairs" ? ok : events) / seconds, p50_ms: pct(50), p99_ms: pct(99) }));
agent.destroy();
