import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JsonReply, TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { READY_TIMEOUT_MS, startBin, waitForHttp } from "../support/process.js";
import { uniqueRedisPrefix } from "../support/redis.js";

/**
 * bin/api.ts with DATABASE_READ_URL naming a replica that is not there: it starts, the read-mostly
 * endpoints answer from the primary, and /metrics and the log say the replica is away. (The
 * routing against a real replica: test/http/read-replica.test.ts.)
 */
describe("npm run api with a read replica that is down", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it(
    "serves reads from the primary, counts the fallback and logs it once",
    async () => {
      const port = await freePort();
      const deadPort = await freePort(); // nothing listens there
      const api = startBin("api.ts", {
        DATABASE_URL: db.appUrl,
        DATABASE_READ_URL: db.appUrl.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${deadPort}`),
        REDIS_PREFIX: uniqueRedisPrefix("api-replica"),
        PORT: String(port),
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "info",
      });
      const base = `http://127.0.0.1:${port}`;
      const admin = { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" };
      try {
        await waitForHttp(api, `${base}/readyz`, { timeoutMs: READY_TIMEOUT_MS });
        const org: JsonReply = await (
          await fetch(`${base}/v1/admin/orgs`, { method: "POST", headers: admin, body: JSON.stringify({ name: "R" }) })
        ).json();
        const key: JsonReply = await (
          await fetch(`${base}/v1/admin/orgs/${org.id}/keys`, {
            method: "POST",
            headers: admin,
            body: JSON.stringify({ scope: "org" }),
          })
        ).json();
        for (const path of ["/v1/billing/transactions", "/v1/billing/usage", "/v1/billing/invoices"]) {
          const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key.key}` } });
          expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
        }
        const metrics = await (await fetch(`${base}/metrics`)).text();
        expect(metrics).toMatch(/hanzo_db_replica_fallbacks_total\{reason="unreachable"\} [1-9]/);
        expect(metrics).toMatch(/hanzo_db_replica_up 0/);
        expect(metrics).toMatch(/hanzo_db_reads_total\{target="primary",reason="replica_(down|failed)"\} [1-9]/);
        expect(api.output().match(/read replica unavailable/g)).toHaveLength(1);
      } finally {
        await api.stop("SIGTERM");
      }
      expect(await api.exited).toBe(0);
    },
    READY_TIMEOUT_MS + 60_000,
  );
});
