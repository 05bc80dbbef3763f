import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { freePort } from "../support/free-port.js";
import { startBin, waitFor, type RunningProcess } from "../support/process.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";

const HUSD = 10n ** 18n;

/** Everything BullMQ keeps under a prefix, as text: job hashes (failedReason, stacktrace), sets, event streams. */
async function dumpRedis(redis: Redis, prefix: string): Promise<string> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === "string") out.push(String(await redis.get(key)));
      else if (type === "hash") out.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === "list") out.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === "set") out.push(JSON.stringify(await redis.smembers(key)));
      else if (type === "zset") out.push(JSON.stringify(await redis.zrange(key, "0", "-1")));
      else if (type === "stream") out.push(JSON.stringify(await redis.xrange(key, "-", "+")));
    }
  } while (cursor !== "0");
  return out.join("\n");
}

/**
 * The API and the workers as deployed (real processes, real logger), configured with an RPC URL
 * that carries a provider key in its path and its query, pointing at a port nobody listens on.
 */
describe("an RPC URL with a key in it, and the node behind it down", () => {
  const PATH_SECRET = `PATHKEY${randomBytes(8).toString("hex")}`;
  const QUERY_SECRET = `QUERYKEY${randomBytes(8).toString("hex")}`;
  const secrets = new RegExp(`${PATH_SECRET}|${QUERY_SECRET}`);
  const prefix = uniqueRedisPrefix("rpc-secret");
  let db: TestDatabase;
  let chain: TestChain;
  let stack: ReturnType<typeof depositStack>;
  let worker: RunningProcess;
  let api: RunningProcess;
  let base: string;
  let rpcPort: number;
  let pending: { hash: string; orgKey: string };
  beforeAll(async () => {
    db = await createTestDatabase({ max: 6 });
    chain = await startTestChain();
    stack = depositStack(db, chain); // a working node, only to put a pending deposit in the database
    const org = await stack.orgWithAddress("Keyed Co");
    const { hash } = await stack.sendHusd(org.address, 2n * HUSD);
    expect(
      (await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } })).status,
    ).toBe(201);
    pending = { hash, orgKey: org.orgKey };

    rpcPort = await freePort(); // closed: every RPC call fails with connection refused
    const env = {
      DATABASE_URL: db.appUrl,
      REDIS_PREFIX: prefix,
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: "debug",
      RPC_URL: `http://127.0.0.1:${rpcPort}/v2/${PATH_SECRET}?apikey=${QUERY_SECRET}`,
      CHAIN_ID: String(chain.chainId),
      HUSD_ADDRESS: chain.husd,
      DEPOSIT_FACTORY_ADDRESS: chain.factory,
      FINALITY_CONFIRMATIONS: "2",
      DEPOSIT_SCAN_INTERVAL_MS: "200",
      DATABASE_POOL_MAX: "3",
    };
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    worker = startBin("worker.ts", env);
    api = startBin("api.ts", { ...env, PORT: String(port) });
    await waitFor(() => worker.output().includes('"msg":"workers started"'), {
      timeoutMs: 30_000,
      what: `worker up: ${worker.output().slice(-1000)}`,
    });
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, {
      timeoutMs: 30_000,
      what: `api up: ${api.output().slice(-1000)}`,
    });
  }, 90_000);
  afterAll(async () => {
    await Promise.all([worker?.stop(), api?.stop()]);
    const redis = createTestRedis();
    await clearRedisPrefix(redis, `{${prefix}}`);
    redis.disconnect();
    await stack?.close();
    await chain?.stop();
    await db?.drop();
  });

  it("appears in no log line, no failed job kept in Redis, no dashboard page and no response", async () => {
    const bodies: string[] = [];
    const call = async (method: string, path: string, key: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      bodies.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
      return { status: res.status, json: JSON.parse(text) };
    };
    // The API's chain calls: a known and an unknown transaction, and an address never computed.
    for (const hash of [pending.hash, `0x${randomBytes(32).toString("hex")}`]) {
      const res = await call("POST", "/v1/billing/husd/topups", pending.orgKey, { tx_hash: hash });
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe("upstream_unavailable");
    }
    const fresh = (await call("POST", "/v1/admin/orgs", TEST_ADMIN_KEY, { name: "Fresh Co" })).json;
    const freshKey = (await call("POST", `/v1/admin/orgs/${fresh.id}/keys`, TEST_ADMIN_KEY, { scope: "org" })).json.key;
    expect((await call("GET", "/v1/billing/husd/deposit-address", freshKey)).json.error.code).toBe(
      "upstream_unavailable",
    );

    // The workers' chain calls fail: the deposit check (retried) and the audit of credited deposits.
    const redis = createTestRedis();
    try {
      await waitFor(
        async () => {
          const out = worker.output();
          return (
            out.includes('"queue":"husd-deposits"') &&
            out.includes('"queue":"maintenance"') &&
            (await dumpRedis(redis, `{${prefix}}`)).includes("HTTP request failed")
          );
        },
        {
          timeoutMs: 30_000,
          intervalMs: 250,
          what: `failed deposit checks and audits: ${worker.output().slice(-2000)}`,
        },
      );
      const stored = await dumpRedis(redis, `{${prefix}}`);
      expect(stored).toContain(`http://127.0.0.1:${rpcPort}/[redacted]`); // the failure is kept, the key is not
      expect(stored).not.toMatch(secrets);
    } finally {
      redis.disconnect();
    }

    // The queue dashboard, as an operator sees it.
    const basic = `Basic ${Buffer.from(`ops:${TEST_ADMIN_KEY}`).toString("base64")}`;
    for (const [queue, status] of [
      ["maintenance", "failed"],
      ["husd-deposits", "latest"],
    ] as const) {
      const res = await fetch(
        `${base}/admin/queues/api/queues?activeQueue=${queue}&status=${status}&page=1&jobsPerPage=50`,
        { headers: { authorization: basic } },
      );
      expect(res.status).toBe(200);
      const text = await res.text();
      if (queue === "maintenance") expect(text).toContain("HTTP request failed");
      expect(text).not.toMatch(secrets);
    }

    for (const body of bodies) expect(body).not.toMatch(secrets);
    const logs = `${worker.output()}\n${api.output()}`;
    expect(logs).toContain('"msg":"job failed"');
    expect(logs).toContain(`127.0.0.1:${rpcPort}/[redacted]`);
    const leaking = logs.split("\n").filter((line) => secrets.test(line));
    expect(leaking).toEqual([]);
  });
});
