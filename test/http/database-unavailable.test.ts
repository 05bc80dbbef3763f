import { describe, expect } from "vitest";
import { KeyCache } from "../../src/billing/api-keys.js";
import { createSql } from "../../src/db/client.js";
import { createTestApp, TEST_ADMIN_KEY } from "../support/app.js";
import { dbTest } from "../support/fixtures.js";
import { freePort } from "../support/free-port.js";
import { startAnswerCutter } from "../support/pg-answer-cutter.js";

// When the API's link to PostgreSQL fails, the caller is told so (503 database_unavailable, with
// Retry-After) instead of a 500 internal_error, which reads as a bug: a request whose answer was
// lost after its commit was applied, and one refused at connect was not; the caller cannot tell
// which, so the message says how to find out (the same Idempotency-Key, or a read first).

const expectDatabaseUnavailable = (res: { status: number; json: unknown; headers: Headers }) => {
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe("1");
  expect(res.json).toMatchObject({
    error: {
      type: "api_error",
      code: "database_unavailable",
      message: expect.stringMatching(/may or may not have been applied.*Idempotency-Key/),
      request_id: expect.stringMatching(/^req_/),
    },
  });
};

/** The app's database reached through a PostgreSQL answer cutter (test/support/pg-answer-cutter.ts). */
async function sqlThroughCutter(appUrl: string) {
  const cutter = await startAnswerCutter(5432);
  const url = new URL(appUrl);
  url.port = String(cutter.port);
  const sql = createSql(url.toString(), { max: 2 });
  return {
    cutter,
    sql,
    async close() {
      await sql.end({ timeout: 1 });
      await cutter.close();
    },
  };
}

describe("the database link fails during a request", () => {
  dbTest(
    "lost after the commit: 503 database_unavailable; the request was applied, and its retry with the key answers it",
    async ({ db }) => {
      const { cutter, sql, close } = await sqlThroughCutter(db.appUrl);
      try {
        const app = createTestApp({ sql });
        const create = () =>
          app.call("POST", "/v1/admin/orgs", {
            key: TEST_ADMIN_KEY,
            body: { name: "Lost answer" },
            headers: { "idempotency-key": "org-1" },
          });
        cutter.arm("commit");
        const lost = await create();
        expect(cutter.cuts()).toBe(1);
        expectDatabaseUnavailable(lost);
        const [made] = await db.sql<
          { n: number }[]
        >`select count(*)::int as n from organizations where name = 'Lost answer'`;
        expect(made?.n).toBe(1);
        const retry = await create();
        expect(retry.status, retry.text).toBe(200);
        expect(retry.headers.get("idempotent-replayed")).toBe("true");
      } finally {
        await close();
      }
    },
  );

  dbTest(
    "unreachable: every kind of request is 503 database_unavailable in the envelope, never a 500",
    async ({ db }) => {
      const url = new URL(db.appUrl);
      url.port = String(await freePort());
      const sql = createSql(url.toString(), { max: 2 });
      try {
        const app = createTestApp({ sql });
        expectDatabaseUnavailable(
          await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "x" } }),
        );
        expectDatabaseUnavailable(
          await app.call("GET", "/v1/billing/balance", { key: "hk-org0123456789abcdefghijklmnop" }),
        );
        expectDatabaseUnavailable(
          await app.call("POST", "/v1/billing/usage", {
            key: "hk-gw0123456789abcdefghijklmnop",
            body: { events: [{ idempotency_key: "e1", org_id: "org_x", product: "api", quantities: { requests: 1 } }] },
          }),
        );
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
  );

  dbTest(
    "gone while the API runs: metering's authorizations and usage events are each told database_unavailable",
    async ({ db }) => {
      const { cutter, sql, close } = await sqlThroughCutter(db.appUrl);
      try {
        // The keys are cached, so requests get past authentication to metering.
        const app = createTestApp({ sql, extra: { keyCache: new KeyCache() } });
        const org = await app.createOrg();
        await app.grant(org.id, "10.00");
        const event = (key: string) => ({
          idempotency_key: key,
          org_id: org.id,
          timestamp: new Date().toISOString(),
          product: "api",
          quantities: { requests: 1 },
        });
        const authorization = { org_id: org.id, product: "api", estimate: { requests: 1 } };
        const before = await app.call("POST", "/v1/billing/usage", {
          key: org.gatewayKey,
          body: { events: [event("e0")] },
        });
        expect(before.json.results[0].status, before.text).toBe("recorded");
        expect(
          (await app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body: authorization })).status,
        ).toBe(201);
        await cutter.close(); // every link cut, every new one refused

        const usage = await app.call("POST", "/v1/billing/usage", {
          key: org.gatewayKey,
          body: { events: [event("e1"), event("e2")] },
        });
        if (usage.status === 200) {
          for (const r of usage.json.results) {
            expect(r.status, usage.text).toBe("rejected");
            expect(r.error.code, usage.text).toBe("database_unavailable");
          }
        } else expectDatabaseUnavailable(usage);
        expectDatabaseUnavailable(
          await app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body: authorization }),
        );
        const batch = await app.call("POST", "/v1/billing/authorize/batch", {
          key: org.gatewayKey,
          body: { requests: [authorization, authorization] },
        });
        if (batch.status === 200)
          for (const r of batch.json.results)
            expect(r, batch.text).toMatchObject({ status: 503, error: { code: "database_unavailable" } });
        else expectDatabaseUnavailable(batch);
      } finally {
        await close();
      }
    },
  );
});
