import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { ROOT, startBin, startBuilt, waitFor, type RunningProcess } from "../support/process.js";
import { uniqueRedisPrefix } from "../support/redis.js";

describe("npm run api (bin/api.ts)", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  async function servesAndStops(api: RunningProcess, port: number) {
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { what: `api on ${port}: ${api.output()}` });
      const org = await fetch(`${base}/v1/admin/orgs`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "Process Co" }),
      });
      expect(org.status).toBe(201);
    } finally {
      await api.stop("SIGTERM");
    }
    expect(await api.exited).toBe(0);
    expect(api.output()).toContain('"msg":"api stopped"');
  }

  it("serves /healthz and the API, and exits cleanly on SIGTERM", async () => {
    const port = await freePort();
    await servesAndStops(
      startBin("api.ts", {
        DATABASE_URL: db.url,
        PORT: String(port),
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "info",
      }),
      port,
    );
  });

  it("the production build (npm run build, then npm start) serves the API and stops cleanly, and so does its worker", async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "pipe" });
    const port = await freePort();
    await servesAndStops(
      startBuilt("api.mjs", {
        DATABASE_URL: db.url,
        PORT: String(port),
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "info",
      }),
      port,
    );
    const worker = startBuilt("worker.mjs", {
      DATABASE_URL: db.url,
      REDIS_PREFIX: uniqueRedisPrefix("worker-built"),
      LOG_LEVEL: "info",
    });
    try {
      await waitFor(() => worker.output().includes('"msg":"workers started"'), {
        what: `built worker up: ${worker.output()}`,
      });
    } finally {
      await worker.stop("SIGTERM");
    }
    expect(await worker.exited).toBe(0);
  });

  it("refuses to start with a bad environment and names every bad variable", async () => {
    const api = startBin("api.ts", { DATABASE_URL: "nope", PORT: "-1" });
    const code = await api.exited;
    expect(code).not.toBe(0);
    expect(api.output()).toContain("DATABASE_URL");
    expect(api.output()).toContain("PORT");
  });

  it("npm run worker starts its queues and exits cleanly on SIGTERM", async () => {
    const worker = startBin("worker.ts", {
      DATABASE_URL: db.url,
      REDIS_PREFIX: uniqueRedisPrefix("worker-proc"),
      LOG_LEVEL: "info",
    });
    await waitFor(() => worker.output().includes('"msg":"workers started"'), { what: `worker up: ${worker.output()}` });
    await worker.stop("SIGTERM");
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toContain('"msg":"worker stopped"');
  });
});
