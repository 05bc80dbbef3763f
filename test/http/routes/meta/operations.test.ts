import { describe, expect } from "vitest";
import { createMetrics } from "../../../../src/observability/metrics.js";
import { createQueues, type Queues } from "../../../../src/jobs/queues.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { dbTest } from "../../../support/fixtures.js";

/** `app` with /metrics and the queue dashboard, on queues under the file's Redis prefix. */
const it = dbTest.extend<{ queues: Queues; app: TestApp }>({
  queues: [
    async ({ redis }, use) => {
      const queues = createQueues(redis.connection, redis.prefix);
      try {
        await use(queues);
      } finally {
        await queues.close();
      }
    },
    { scope: "file" },
  ],
  app: [
    async ({ db, queues }, use) =>
      use(createTestApp({ sql: db.appSql, extra: { metrics: createMetrics({ sql: db.appSql, queues }), queues } })),
    { scope: "file" },
  ],
});

describe("operating the service: /metrics and the queue dashboard", () => {
  it.scoped({ redisLabel: "ops" });
  it("serves Prometheus metrics: latency by route template, live holds, postings, queue depths", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 3 } },
    });
    await app.call("GET", `/v1/billing/invoices/inv_nothing`, { key: org.orgKey });
    const res = await app.call("GET", "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(res.text).toMatch(
      /hanzo_http_request_duration_seconds_count\{method="POST",route="\/v1\/billing\/authorize",status="201"\} 1/,
    );
    expect(res.text).toContain('route="/v1/billing/invoices/:id",status="404"');
    expect(res.text).not.toContain("inv_nothing");
    expect(res.text).toMatch(/hanzo_holds_live\{measure="count"\} 1/);
    expect(res.text).toMatch(/hanzo_holds_live\{measure="nano_usd"\} 300000/);
    expect(res.text).toMatch(/hanzo_ledger_postings\{kind="grant"\} 1/);
    expect(res.text).toMatch(/hanzo_queue_jobs\{queue="low-balance-alerts",state="waiting"\} 0/);
  });

  it("mounts the queue dashboard under the admin key only", async ({ app }) => {
    const anonymous = await app.call("GET", "/admin/queues");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toContain("Basic");
    const org = await app.createOrg();
    const basic = (key: string) => ({ authorization: `Basic ${Buffer.from(`ops:${key}`).toString("base64")}` });
    expect((await app.call("GET", "/admin/queues", { headers: basic(org.orgKey) })).status).toBe(403);
    const ok = await app.call("GET", "/admin/queues", { headers: basic(TEST_ADMIN_KEY) });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("<html");
    const api = await app.call("GET", "/admin/queues/api/queues", { key: TEST_ADMIN_KEY });
    expect(api.status).toBe(200);
    expect(JSON.stringify(api.json)).toContain("low-balance-alerts");
  });

  it("takes the dashboard's changes from its own pages only, and cannot be framed (found by a helper's attack)", async ({
    app,
    queues,
  }) => {
    const queue = queues.all().find((q) => q.name === "maintenance");
    if (!queue) throw new Error("no maintenance queue");
    const basic = { authorization: `Basic ${Buffer.from(`ops:${TEST_ADMIN_KEY}`).toString("base64")}` };
    // What a <form enctype="text/plain" method="post"> on another site sends with the Basic
    // credentials the operator's browser keeps: refused, nothing added.
    const add = (headers: Record<string, string>) =>
      app.call("POST", `/admin/queues/api/queues/${queue.name}/add`, {
        headers: { ...basic, "content-type": "text/plain", ...headers },
        rawBody: '{"name":"from-elsewhere","data":{}}',
      });
    const waiting = async () => (await queue.getJobCounts()).waiting ?? 0;
    const before = await waiting();
    const elsewhere: Record<string, string>[] = [
      { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      { origin: "https://evil.example" }, // an older browser: Origin only
      { "sec-fetch-site": "same-site" },
      { origin: "null" },
    ];
    for (const from of elsewhere) {
      const res = await add(from);
      expect(res.status, JSON.stringify(from)).toBe(403);
      expect(res.json.error.code).toBe("csrf_token_invalid");
    }
    expect(await waiting()).toBe(before);
    // Its own page's request, and a script's (no browser headers), are taken.
    const own = await add({ origin: "http://localhost", host: "localhost", "sec-fetch-site": "same-origin" });
    expect(own.status, own.text).toBe(200);
    expect((await add({})).status).toBe(200);
    expect(await waiting()).toBe(before + 2);
    const page = await app.call("GET", "/admin/queues", { headers: basic });
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("content-security-policy")).toBe("frame-ancestors 'none'");
  });
});
