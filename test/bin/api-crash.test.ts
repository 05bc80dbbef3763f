import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { startBin, waitFor } from "../support/process.js";
import { uniqueRedisPrefix } from "../support/redis.js";

describe("nothing acknowledged is lost", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it("kill -9 the API mid-load: every usage event that got a 2xx is in the ledger afterwards", async () => {
    const t = createTestApp({ sql: db.appSql });
    const org = await t.createOrg();
    await t.grant(org.id, "1000");
    const port = await freePort();
    const api = startBin("api.ts", {
      DATABASE_URL: db.appUrl,
      PORT: String(port),
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      REDIS_PREFIX: uniqueRedisPrefix("crash"),
      LOG_LEVEL: "warn",
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { what: "api up" });

    const acknowledged: string[] = [];
    let stop = false;
    let n = 0;
    async function client(c: number) {
      while (!stop) {
        const keys = Array.from({ length: 20 }, () => `crash-${c}-${++n}`);
        try {
          const res = await fetch(`${base}/v1/billing/usage`, {
            method: "POST",
            headers: { authorization: `Bearer ${org.gatewayKey}`, "content-type": "application/json" },
            body: JSON.stringify({
              events: keys.map((k) => ({
                idempotency_key: k,
                org_id: org.id,
                timestamp: new Date().toISOString(),
                product: "api",
                quantities: { requests: 1 },
              })),
            }),
          });
          if (res.ok) {
            const body = (await res.json()) as { results: { idempotency_key: string; status: string }[] };
            for (const r of body.results) if (r.status === "recorded") acknowledged.push(r.idempotency_key);
          }
        } catch {
          // connection reset by the kill: these were never acknowledged
        }
      }
    }
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    await waitFor(() => acknowledged.length >= 400, { what: "load running" });
    api.child.kill("SIGKILL");
    await api.exited;
    stop = true;
    await Promise.all(clients);

    const stored = await db.sql<
      { idempotency_key: string }[]
    >`select idempotency_key from usage_events where org_id = ${org.id}`;
    const inDb = new Set(stored.map((r) => r.idempotency_key));
    const lost = acknowledged.filter((k) => !inDb.has(k));
    expect(acknowledged.length).toBeGreaterThanOrEqual(400);
    expect(lost).toEqual([]);
    const [sum] =
      await db.sql`select count(*)::int as n, coalesce(sum(cost), 0)::text as cost from usage_events where org_id = ${org.id}`;
    const balance = (await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(BigInt(balance.balance_nano_usd)).toBe(1000n * 1_000_000_000n - BigInt(sum!.cost));
  });
});
