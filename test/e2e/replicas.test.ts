import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JsonReply, TEST_ADMIN_KEY } from "../support/app.js";
import { startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { freePort } from "../support/free-port.js";
import {
  READY_TIMEOUT_MS,
  type RunningProcess,
  startBin,
  WORKERS_STARTED,
  waitFor,
  waitForHttp,
} from "../support/process.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";

/**
 * API and workers are stateless: two of each against one PostgreSQL and one Redis must do
 * everything exactly once. Every call below goes to both APIs at the same time.
 */
describe("two API and two worker processes", () => {
  let db: TestDatabase;
  let chain: TestChain;
  const procs: RunningProcess[] = [];
  const apis: string[] = [];
  const prefix = uniqueRedisPrefix("replicas");
  let helper: ReturnType<typeof depositStack>;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 8 });
    chain = await startTestChain();
    helper = depositStack(db, chain); // only for its chain helpers; no workers of its own
    const env = {
      DATABASE_URL: db.appUrl,
      REDIS_PREFIX: prefix,
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: "warn",
      RPC_URL: chain.rpcUrl,
      CHAIN_ID: String(chain.chainId),
      HUSD_ADDRESS: chain.husd,
      DEPOSIT_FACTORY_ADDRESS: chain.factory,
      FINALITY_CONFIRMATIONS: "2",
      DEPOSIT_SCAN_INTERVAL_MS: "200",
      DATABASE_POOL_MAX: "4",
    };
    // Each process is awaited on its own readiness (the API's /readyz, the worker's start line);
    // one that exits fails the start at once, with its output.
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const api = startBin("api.ts", { ...env, PORT: String(port) });
      const worker = startBin("worker.ts", { ...env, LOG_LEVEL: "info" });
      procs.push(api, worker);
      apis.push(`http://127.0.0.1:${port}`);
      ready.push(waitForHttp(api, `http://127.0.0.1:${port}/readyz`), worker.waitForLine(WORKERS_STARTED));
    }
    await Promise.all(ready);
  }, READY_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    const redis = createTestRedis();
    await clearRedisPrefix(redis, `{${prefix}}`);
    redis.disconnect();
    await helper?.close();
    await chain?.stop();
    await db?.drop();
  });

  async function both(method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
    return Promise.all(
      apis.flatMap((base) =>
        [0, 1, 2].map(async () => {
          const res = await fetch(`${base}${path}`, {
            method,
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          return { status: res.status, json: (await res.json()) as JsonReply };
        }),
      ),
    );
  }
  async function one(method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${apis[0]}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as JsonReply };
  }

  it("grants, usage, authorizations, deposits, alerts and cycle closes each happen once", async () => {
    const org = (await one("POST", "/v1/admin/orgs", TEST_ADMIN_KEY, { name: "Replicated" })).json;
    expect((await one("GET", `/v1/admin/orgs/${org.id}`, TEST_ADMIN_KEY)).status).toBe(200);
    const orgKey = (await one("POST", `/v1/admin/orgs/${org.id}/keys`, TEST_ADMIN_KEY, { scope: "org" })).json.key;
    const gatewayKey = (await one("POST", "/v1/admin/keys", TEST_ADMIN_KEY, { scope: "gateway", name: "gateway" })).json
      .key;
    const balance = async () => BigInt((await one("GET", "/v1/billing/balance", orgKey)).json.balance_nano_usd);

    // A grant sent six times at once, three to each API.
    const grants = await both(
      "POST",
      `/v1/admin/orgs/${org.id}/credits`,
      TEST_ADMIN_KEY,
      { amount: "10.02", reason: "r" },
      { "idempotency-key": "g-1" },
    );
    expect(new Set(grants.map((g) => g.json.id)).size).toBe(1);
    expect(await balance()).toBe(10_020_000_000n);

    // The same usage event six times: one debit. It crosses the $10 threshold: one alert.
    const event = {
      idempotency_key: "u-1",
      org_id: org.id,
      timestamp: new Date().toISOString(),
      product: "api",
      quantities: { requests: 300 },
    };
    const usage = await both("POST", "/v1/billing/usage", gatewayKey, { events: [event] });
    expect(usage.map((u) => u.json.results[0].status).sort()).toEqual([
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "recorded",
    ]);
    expect(await balance()).toBe(9_990_000_000n);

    // Authorizations for $4 each against $9.99: exactly two holds across both replicas.
    const holds = await both("POST", "/v1/billing/authorize", gatewayKey, {
      org_id: org.id,
      product: "api",
      estimate: { requests: 40_000 },
    });
    expect(holds.filter((h) => h.status === 201)).toHaveLength(2);
    expect(holds.filter((h) => h.status === 402)).toHaveLength(4);

    // A HUSD deposit reported to both APIs, decided by two workers: one credit.
    const address = (await one("GET", "/v1/billing/husd/deposit-address", orgKey)).json.address;
    const { hash } = await helper.sendHusd(address, 5n * 10n ** 18n);
    const topups = await both("POST", "/v1/billing/husd/topups", orgKey, { tx_hash: hash });
    expect(new Set(topups.map((t) => t.json.deposits[0].id)).size).toBe(1);
    await chain.mine(4);
    await waitFor(
      async () => (await one("GET", "/v1/billing/husd/deposits", orgKey)).json.data[0].state === "credited",
      { timeoutMs: 20_000, what: "credited" },
    );
    expect(await balance()).toBe(14_990_000_000n);
    const credits = await db.sql`select count(*)::int as n from ledger_transactions where kind = 'husd_deposit'`;
    expect(credits[0]!.n).toBe(1);

    // The alert was delivered once by one of the two workers.
    await waitFor(
      async () =>
        (
          await db.sql`select count(*)::int as n from balance_alerts where org_id = ${org.id} and delivered_at is not null`
        )[0]!.n === 1,
      { timeoutMs: 20_000, what: "alert delivered" },
    );
    expect((await db.sql`select count(*)::int as n from balance_alerts where org_id = ${org.id}`)[0]!.n).toBe(1);

    // Ending the cycle six times at once: one invoice.
    await both("POST", "/v1/admin/cycles/close", TEST_ADMIN_KEY, { org_id: org.id, end_current_cycle_now: true });
    const invoices = await db.sql`select count(*)::int as n from invoices where org_id = ${org.id}`;
    expect(invoices[0]!.n).toBe(1);
  });
});
