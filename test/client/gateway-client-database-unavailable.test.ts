import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { describe, expect } from "vitest";
import { GatewayClient, GatewayError } from "../../client/index.js";
import { KeyCache } from "../../src/billing/api-keys.js";
import { createSql } from "../../src/db/client.js";
import { createTestApp } from "../support/app.js";
import { dbTest as it } from "../support/fixtures.js";
import { startAnswerCutter } from "../support/pg-answer-cutter.js";

/**
 * A usage event the API answers `rejected` with `database_unavailable` ("may or may not have been
 * recorded; retry it with the same idempotency_key") reaches the gateway as a retryable
 * GatewayError. It was not retryable (the per-event error has no HTTP status, and the code was not
 * in the client's list), so a gateway that drops what is not retryable lost the usage (helper-93).
 * The link to PostgreSQL is really cut here (test/support/pg-answer-cutter.ts).
 */
describe("the gateway client when the API's database link is gone", () => {
  it("reports usage and authorizations as retryable database_unavailable errors", async ({ db }) => {
    const cutter = await startAnswerCutter(5432);
    const url = new URL(db.appUrl);
    url.port = String(cutter.port);
    const sql = createSql(url.toString(), { max: 2 });
    // The keys are cached, so requests get past authentication to metering.
    const app = createTestApp({ sql, extra: { keyCache: new KeyCache() } });
    const server = serve({ fetch: app.app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    try {
      const org = await app.createOrg();
      await app.grant(org.id, "10.00");
      const client = new GatewayClient({
        baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        key: org.gatewayKey,
      });
      const event = (key: string) => ({
        idempotency_key: key,
        org_id: org.id,
        timestamp: new Date().toISOString(),
        product: "api",
        quantities: { requests: 3 },
      });
      expect(await client.reportUsage(event("before"))).toMatchObject({ status: "recorded" });
      await cutter.close(); // every link cut, every new one refused

      const usage = await client.reportUsage(event("during")).catch((err: unknown) => err);
      expect(usage).toBeInstanceOf(GatewayError);
      expect({ code: (usage as GatewayError).code, retryable: (usage as GatewayError).retryable }).toEqual({
        code: "database_unavailable",
        retryable: true,
      });
      const auth = await client
        .authorize({ org_id: org.id, product: "api", estimate: { requests: 1 } })
        .catch((err: unknown) => err);
      expect({ code: (auth as GatewayError).code, retryable: (auth as GatewayError).retryable }).toEqual({
        code: "database_unavailable",
        retryable: true,
      });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sql.end({ timeout: 1 });
      await cutter.close();
    }
  });
});
