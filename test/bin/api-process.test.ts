import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { startTestChain } from "../support/chain-stack.js";
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
        DATABASE_URL: db.appUrl,
        PORT: String(port),
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "info",
      }),
      port,
    );
  });

  let built: Promise<void> | undefined;
  const build = () => {
    built ??= Promise.resolve().then(() => {
      execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "pipe" });
    });
    return built;
  };

  it("the production build (npm run build, then npm start) serves the API and stops cleanly, and so does its worker", async () => {
    await build();
    const port = await freePort();
    await servesAndStops(
      startBuilt("api.mjs", {
        DATABASE_URL: db.appUrl,
        PORT: String(port),
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "info",
      }),
      port,
    );
    const worker = startBuilt("worker.mjs", {
      DATABASE_URL: db.appUrl,
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

  it("the production build migrates a new database (npm run start:migrate) and runs the indexer until ready (npm run start:indexer)", async () => {
    await build();
    const fresh = `${db.name}_m`;
    const migrate = startBuilt("migrate.mjs", { DATABASE_URL: db.url.replace(db.name, fresh) });
    try {
      expect(await migrate.exited).toBe(0);
      expect(migrate.output()).toContain(`created database ${fresh}`);
      expect(migrate.output()).toMatch(/applied \d+ migration\(s\)/);
    } finally {
      await db.sql.unsafe(`drop database if exists "${fresh}" with (force)`);
    }

    const chain = await startTestChain();
    try {
      const port = await freePort();
      const indexer = startBuilt("indexer.mjs", {
        DATABASE_URL: db.url,
        RPC_URL: chain.rpcUrl,
        CHAIN_ID: String(chain.chainId),
        HUSD_ADDRESS: chain.husd,
        HUSD_START_BLOCK: String(chain.deployBlock),
        PONDER_PORT: String(port),
        LOG_LEVEL: "info",
      });
      try {
        await indexer.waitForLine("indexer ready");
        expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
      } finally {
        await indexer.stop("SIGTERM");
      }
      expect(await indexer.exited).toBe(0);
    } finally {
      await chain.stop();
    }
  }, 300_000);

  it("refuses to start with a bad environment and names every bad variable", async () => {
    const api = startBin("api.ts", { DATABASE_URL: "nope", PORT: "-1" });
    const code = await api.exited;
    expect(code).not.toBe(0);
    expect(api.output()).toContain("DATABASE_URL");
    expect(api.output()).toContain("PORT");
  });

  it("npm run worker starts its queues and exits cleanly on SIGTERM", async () => {
    const worker = startBin("worker.ts", {
      DATABASE_URL: db.appUrl,
      REDIS_PREFIX: uniqueRedisPrefix("worker-proc"),
      LOG_LEVEL: "info",
    });
    await waitFor(() => worker.output().includes('"msg":"workers started"'), { what: `worker up: ${worker.output()}` });
    await worker.stop("SIGTERM");
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toContain('"msg":"worker stopped"');
  });
});
