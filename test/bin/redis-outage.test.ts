import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import {
  READY_TIMEOUT_MS,
  type RunningProcess,
  spawnTracked,
  startBin,
  track,
  WORKERS_STARTED,
  waitForHttp,
} from "../support/process.js";

/** A Redis of this test's own on a free port, so it can be stopped and started again under the processes. */
async function startRedis(port: number): Promise<RunningProcess> {
  const redis = track(
    spawnTracked("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"]),
    `redis-server on ${port}`,
  );
  await redis.waitForLine("Ready to accept connections");
  return redis;
}

/**
 * Redis going away under a running API and worker: each says so once (not once per reconnection
 * attempt), /healthz names Redis as down and /readyz answers 503, and both recover by themselves.
 */
describe("Redis goes down while the API and a worker run", () => {
  let db: TestDatabase;
  let port: number;
  let redis: RunningProcess;
  let api: RunningProcess;
  let worker: RunningProcess;
  let base: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    port = await freePort();
    redis = await startRedis(port);
    const apiPort = await freePort();
    base = `http://127.0.0.1:${apiPort}`;
    const env = { DATABASE_URL: db.url, REDIS_URL: `redis://127.0.0.1:${port}`, LOG_LEVEL: "info" };
    api = startBin("api.ts", { ...env, PORT: String(apiPort) });
    worker = startBin("worker.ts", env);
    await Promise.all([waitForHttp(api, `${base}/readyz`), worker.waitForLine(WORKERS_STARTED)]);
  }, READY_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop(), redis?.stop()]);
    await db?.drop();
  });

  const probe = async (path: string) => {
    const res = await fetch(`${base}${path}`);
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const count = (proc: RunningProcess, text: string) => proc.output().split(text).length - 1;

  it("reports Redis down on /healthz and 503 on /readyz, logs one line each, and recovers", async () => {
    expect(await probe("/healthz")).toEqual({ status: 200, json: { ok: true, postgres: "up", redis: "up" } });
    expect((await probe("/readyz")).status).toBe(200);

    await redis.stop("SIGKILL");
    await api.waitForLine("redis is down", { timeoutMs: 30_000 });
    await worker.waitForLine("redis is down", { timeoutMs: 30_000 });
    await api.waitFor(async () => (await probe("/readyz")).status === 503, { timeoutMs: 30_000, what: "/readyz 503" });
    expect(await probe("/healthz")).toEqual({ status: 503, json: { ok: false, postgres: "up", redis: "down" } });
    expect((await probe("/readyz")).json).toMatchObject({ ready: false, redis: "down" });

    // Several reconnection attempts' worth of time (200 ms, 400 ms, 800 ms, 1.6 s …): still one line each.
    const downSince = Date.now();
    await api.waitFor(async () => Date.now() - downSince > 4_000 && (await probe("/readyz")).status === 503, {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: "4 s of Redis down",
    });
    for (const proc of [api, worker]) {
      expect(count(proc, "redis is down"), proc.output()).toBe(1);
      // Redis' refusals appear only inside that one line (the RPC's, for the worker's chain jobs, are another matter).
      expect(count(proc, `ECONNREFUSED 127.0.0.1:${port}`), proc.output()).toBeLessThanOrEqual(1);
      expect(proc.output()).not.toMatch(/^\s+at /m); // no stack trace on the console
    }

    redis = await startRedis(port);
    await api.waitForLine("redis is back", { timeoutMs: 60_000 });
    await worker.waitForLine("redis is back", { timeoutMs: 60_000 });
    await api.waitFor(async () => (await probe("/readyz")).status === 200, { timeoutMs: 30_000, what: "/readyz 200" });
    expect(await probe("/healthz")).toEqual({ status: 200, json: { ok: true, postgres: "up", redis: "up" } });
    expect(count(api, "redis is down")).toBe(1);
  });
});
