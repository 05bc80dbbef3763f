import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";
import { freePort } from "../support/free-port.js";
import { startBin, type RunningProcess } from "../support/process.js";

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

const PATH_SECRET = `PATHKEY${randomBytes(8).toString("hex")}`;
const QUERY_SECRET = `QUERYKEY${randomBytes(8).toString("hex")}`;

type Deployed = {
  worker: RunningProcess;
  api: RunningProcess;
  base: string;
  /** The closed port the RPC URL points at: every RPC call fails with connection refused. */
  rpcPort: number;
  /** A deposit recorded through a working node, still pending. */
  pending: { hash: string; orgKey: string };
};

/**
 * `deployed`: the API and the workers as real processes on the file's database and Redis prefix,
 * their RPC URL carrying the secrets, each waited on until ready.
 */
const it = chainTest.extend<{ deployed: Deployed }>({
  deployed: [
    async ({ db, chain, stack, redis }, use) => {
      const org = await stack.orgWithAddress("Keyed Co"); // the stack's node works: it records the pending deposit
      const { hash } = await stack.sendHusd(org.address, 2n * HUSD);
      expect(
        (await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } })).status,
      ).toBe(201);
      const rpcPort = await freePort();
      const env = {
        DATABASE_URL: db.appUrl,
        REDIS_PREFIX: redis.prefix,
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
      const base = `http://127.0.0.1:${port}`;
      const worker = startBin("worker.ts", env);
      const api = startBin("api.ts", { ...env, PORT: String(port) });
      try {
        await worker.waitForLine('"msg":"workers started"', { timeoutMs: 30_000 });
        await api.waitFor(async () => (await fetch(`${base}/healthz`)).ok, { timeoutMs: 30_000, what: "api up" });
        await use({ worker, api, base, rpcPort, pending: { hash, orgKey: org.orgKey } });
      } finally {
        await Promise.all([worker.stop(), api.stop()]);
      }
    },
    { scope: "file" },
  ],
});

/**
 * The API and the workers as deployed (real processes, real logger), configured with an RPC URL
 * that carries a provider key in its path and its query, pointing at a port nobody listens on.
 */
describe("an RPC URL with a key in it, and the node behind it down", () => {
  const secrets = new RegExp(`${PATH_SECRET}|${QUERY_SECRET}`);
  it.scoped({ dbOptions: { max: 6 }, redisLabel: "rpc-secret" });

  // Starts anvil, the API and the workers first: room for a loaded machine.
  it("appears in no log line, no failed job kept in Redis, no dashboard page and no response", {
    timeout: 150_000,
  }, async ({ redis, deployed: { worker, api, base, rpcPort, pending } }) => {
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
    await worker.waitFor(
      async () => {
        const out = worker.output();
        return (
          out.includes('"queue":"husd-deposits"') &&
          out.includes('"queue":"maintenance"') &&
          (await dumpRedis(redis.connection, `{${redis.prefix}}`)).includes("HTTP request failed")
        );
      },
      {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `failed deposit checks and audits: ${worker.output().slice(-2000)}`,
      },
    );
    const stored = await dumpRedis(redis.connection, `{${redis.prefix}}`);
    expect(stored).toContain(`http://127.0.0.1:${rpcPort}/[redacted]`); // the failure is kept, the key is not
    expect(stored).not.toMatch(secrets);

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
