/**
 * Webhook delivery speed (issue 15), against a real worker process (bin/worker.ts) on a throwaway
 * database and Redis prefix, with receivers on 127.0.0.1 (WEBHOOK_ALLOW_LOCALHOST):
 *
 * 1. Latency: facts committed one at a time (BENCH_FACTS, one every 50 ms), each an event for an
 *    org with one endpoint whose receiver answers at once: from the fact's commit to the first
 *    delivery attempt reaching the receiver. Floor: p95 ≤ 1,000 ms.
 * 2. Flood: for BENCH_SECONDS, events of orgs with 10 endpoints each, at BENCH_RATE deliveries a
 *    second, to a receiver that answers every request after 1 s. Deliveries answered per second
 *    in the steady state (from 3 s in to the end of the sending). Floor: ≥ 200/s at the default rate.
 *    Meanwhile a card-charges job is enqueued every 200 ms: its wait (enqueued → started) during
 *    the flood against the same wait with no flood shows whether the other queues starve.
 *
 * Prints its figures and, last, one JSON line. Env: BENCH_SECONDS (20), BENCH_RATE (250),
 * BENCH_FACTS (200), WEBHOOK_CONCURRENCY (the worker's default when unset).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import { Redis } from "ioredis";
import { Job } from "bullmq";
import { createBillingContext } from "../src/billing/context.js";
import { emitEvent } from "../src/billing/events/emit.js";
import { createWebhookEndpoint } from "../src/billing/webhooks/endpoints.js";
import { createOrganization } from "../src/billing/organizations.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { createQueues } from "../src/jobs/queues.js";
import { cpuMicros, startBench, stopProcess } from "./support.js";

const ROOT = new URL("..", import.meta.url).pathname;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const RATE = Number(process.env.BENCH_RATE ?? 250);
const FACTS = Number(process.env.BENCH_FACTS ?? 200);
const P95_FLOOR_MS = 1_000;
const RATE_FLOOR = 200;
const ENDPOINTS_PER_ORG = 10;

const config = loadConfig({ ...process.env, NODE_ENV: "development" } as Record<string, string>);
const bench = await startBench("webhooks");
const sql = createSql(bench.databaseUrl, { max: 8 });
await migrate(sql);
const ctx = createBillingContext({ sql });
const policy = { allowLocalhost: true };

// Receivers: "fast" answers at once, "slow" after 1 s. Each notes when each webhook-id first arrived.
const firstSeen = new Map<string, number>();
const answeredAt: number[] = [];
function receiver(delayMs: number) {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const at = Date.now();
    const id = String(req.headers["webhook-id"] ?? "");
    const key = `${id}|${req.url}`;
    if (!firstSeen.has(key)) firstSeen.set(key, at);
    req.resume();
    req.on("end", () => {
      const answer = () => {
        answeredAt.push(Date.now());
        res.end("ok");
      };
      if (delayMs) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.maxConnections = 10_000;
  return new Promise<{ url: string; close: () => Promise<void> }>((resolve) =>
    server.listen(0, "127.0.0.1", 4096, () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}
const fast = await receiver(0);
const slow = await receiver(1_000);

const worker = spawn(process.execPath, ["--import", "tsx", "bin/worker.ts"], {
  cwd: ROOT,
  env: {
    ...process.env,
    NODE_ENV: "development",
    DATABASE_URL: bench.databaseUrl,
    REDIS_PREFIX: bench.redisPrefix,
    // The card-charges probes name no crossing, so each fails at once (an error line each).
    LOG_LEVEL: "fatal",
    WEBHOOK_ALLOW_LOCALHOST: "true",
  },
  stdio: ["ignore", "inherit", "inherit"],
});
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const queues = createQueues(redis, bench.redisPrefix);

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function emitFor(orgId: string, n: number): Promise<{ id: string; committed: number }> {
  const started = Date.now();
  const id = await sql.begin((tx) =>
    emitEvent(tx, { orgId, type: "deposit.seen", factKey: `bench-${n}`, data: { n }, at: new Date() }),
  );
  // The commit is between `started` and now: counting from `started` can only overstate the latency.
  return { id: id as string, committed: started };
}

// Waits for the worker: an event whose delivery arrives means it listens and delivers.
const latencyOrg = await createOrganization(ctx, { name: "latency" });
await createWebhookEndpoint(ctx, {
  orgId: latencyOrg.id,
  url: `${fast.url}/latency`,
  events: [],
  enabled: true,
  policy,
});
const warm = await emitFor(latencyOrg.id, -1);
for (let i = 0; !firstSeen.has(`${warm.id}|/latency`); i++) {
  if (i > 600) throw new Error("the worker delivered nothing within 60 s");
  await sleep(100);
}

// 1. Latency from commit to first attempt.
const sent: { id: string; committed: number }[] = [];
for (let n = 0; n < FACTS; n++) {
  sent.push(await emitFor(latencyOrg.id, n));
  await sleep(50);
}
for (let i = 0; i < 200 && sent.some((s) => !firstSeen.has(`${s.id}|/latency`)); i++) await sleep(100);
const latencies = sent.map((s) => (firstSeen.get(`${s.id}|/latency`) ?? Number.POSITIVE_INFINITY) - s.committed);
const latency = {
  facts: FACTS,
  delivered: latencies.filter(Number.isFinite).length,
  p50_ms: quantile(latencies, 0.5),
  p95_ms: quantile(latencies, 0.95),
  p99_ms: quantile(latencies, 0.99),
  max_ms: Math.max(...latencies),
};
console.log(
  `commit → first attempt: ${latency.delivered}/${FACTS} delivered, p50 ${latency.p50_ms} ms, p95 ${latency.p95_ms} ms, p99 ${latency.p99_ms} ms, max ${latency.max_ms} ms (floor: p95 ≤ ${P95_FLOOR_MS} ms)`,
);

// Probes of another queue: a card-charges job for a crossing that does not exist (decided at once).
async function probeWaits(ms: number): Promise<number[]> {
  const jobs: Job[] = [];
  const end = Date.now() + ms;
  let n = 0;
  while (Date.now() < end) {
    jobs.push(
      await queues.cardCharges.add("crossing", { kind: "crossing", id: `atp_probe${Date.now()}${n++}` } as never, {
        removeOnComplete: false,
      }),
    );
    await sleep(200);
  }
  await sleep(2_000);
  const waits: number[] = [];
  for (const j of jobs) {
    const done = await Job.fromId(queues.cardCharges, j.id as string);
    if (done?.processedOn) waits.push(done.processedOn - done.timestamp);
    else waits.push(Number.POSITIVE_INFINITY);
  }
  return waits;
}
const idleWaits = await probeWaits(4_000);

// 2. The flood, to the slow receiver.
const eventsPerSecond = RATE / ENDPOINTS_PER_ORG;
const floodOrgs: string[] = [];
for (let i = 0; i < Math.max(1, Math.ceil(eventsPerSecond / 5)); i++) {
  const org = await createOrganization(ctx, { name: `flood ${i}` });
  for (let e = 0; e < ENDPOINTS_PER_ORG; e++)
    await createWebhookEndpoint(ctx, { orgId: org.id, url: `${slow.url}/e${e}`, events: [], enabled: true, policy });
  floodOrgs.push(org.id);
}
answeredAt.length = 0;
const workerCpuBefore = cpuMicros(worker.pid as number);
const floodStart = Date.now();
let emitted = 0;
const flooding = (async () => {
  while (Date.now() - floodStart < SECONDS * 1_000) {
    const due = Math.floor(((Date.now() - floodStart) / 1_000) * eventsPerSecond);
    const batch: Promise<unknown>[] = [];
    while (emitted < due) {
      const org = floodOrgs[emitted % floodOrgs.length] as string;
      batch.push(emitFor(org, 1_000_000 + emitted++));
    }
    await Promise.all(batch);
    await sleep(20);
  }
})();
const floodWaits = await probeWaits(SECONDS * 1_000 - 2_000);
await flooding;
await sleep(3_000);
const workerCpuMs = (cpuMicros(worker.pid as number) - workerCpuBefore) / 1_000;
// Answers come 1 s after their sends: from 3 s in to the end of the sending, every answer is steady state.
const steadyFrom = floodStart + 3_000;
const steadyTo = floodStart + SECONDS * 1_000;
const steady = answeredAt.filter((t) => t >= steadyFrom && t < steadyTo).length;
const steadySeconds = Math.max(1, (steadyTo - steadyFrom) / 1_000);
const flood = {
  target_per_s: RATE,
  seconds: SECONDS,
  deliveries_expected: emitted * ENDPOINTS_PER_ORG,
  answered: answeredAt.length,
  steady_per_s: Math.round(steady / steadySeconds),
  worker_cpu_ms: Math.round(workerCpuMs),
  other_queue_wait_idle_p50_ms: quantile(idleWaits, 0.5),
  other_queue_wait_idle_p95_ms: quantile(idleWaits, 0.95),
  other_queue_wait_flood_p50_ms: quantile(floodWaits, 0.5),
  other_queue_wait_flood_p95_ms: quantile(floodWaits, 0.95),
  other_queue_wait_flood_max_ms: Math.max(...floodWaits),
};
console.log(
  `flood at ${RATE}/s to a 1 s receiver for ${SECONDS} s: ${flood.answered}/${flood.deliveries_expected} answered, steady ${flood.steady_per_s}/s (floor ${RATE_FLOOR}/s), worker CPU ${flood.worker_cpu_ms} ms`,
);
console.log(
  `card-charges job wait: idle p50 ${flood.other_queue_wait_idle_p50_ms} ms p95 ${flood.other_queue_wait_idle_p95_ms} ms; during the flood p50 ${flood.other_queue_wait_flood_p50_ms} ms p95 ${flood.other_queue_wait_flood_p95_ms} ms max ${flood.other_queue_wait_flood_max_ms} ms`,
);

await stopProcess(worker);
await queues.close();
redis.disconnect();
await fast.close();
await slow.close();
await sql.end();
await bench.cleanup();

const ok = latency.p95_ms <= P95_FLOOR_MS && (RATE < RATE_FLOOR || flood.steady_per_s >= RATE_FLOOR);
console.log(
  JSON.stringify({
    bench: "webhooks",
    webhook_concurrency: process.env.WEBHOOK_CONCURRENCY ?? "default",
    latency,
    flood,
    floors: { p95_ms: P95_FLOOR_MS, per_s: RATE_FLOOR },
    ok,
  }),
);
process.exitCode = ok ? 0 : 1;
