import { request, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { createTestApp, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { seedUsageEvents } from "../support/seed-usage.js";

/**
 * An export on a real socket: the server reads rows only as fast as the client takes them, and a
 * client that leaves mid-export ends the query and gives the connection back. The app gets a pool
 * of ONE connection of its own (by application_name, so pg_stat_activity shows exactly its
 * backend): a cursor left open would hold that connection, and the next query would never run.
 */
const APP_NAME = `export-stream-${process.pid}`;
const ROWS = 150_000;

describe("a streamed export (GET /v1/billing/exports/usage.csv?group_by=event)", () => {
  let db: TestDatabase;
  let appSql: Sql;
  let app: TestApp;
  let base: string;
  let close: () => Promise<void>;
  let orgKey: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    appSql = createSql(db.appUrl, { max: 1, applicationName: APP_NAME });
    app = createTestApp({ sql: appSql, config: { EXPORTS_MAX_CONCURRENT: "1" } });
    const org = await app.createOrg("Streaming Co");
    orgKey = org.orgKey;
    await app.grant(org.id, "100000");
    await seedUsageEvents(db.sql, {
      orgId: org.id,
      count: ROWS,
      start: new Date("2026-01-01T00:00:00Z"),
      spacingMs: 60_000,
      label: "stream",
    });
    const server = serve({ fetch: app.app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
  }, 120_000);

  afterAll(async () => {
    await close?.();
    await appSql?.end({ timeout: 5 });
    await db?.drop();
  });

  const PATH = "/v1/billing/exports/usage.csv?start=2026-01-01&end=2027-01-01&group_by=event";

  /** Starts an export and resolves with the response once its first bytes are in, paused. */
  function startExport(): Promise<{ res: IncomingMessage; first: Buffer; abort: () => void }> {
    return new Promise((resolve, reject) => {
      const req = request(`${base}${PATH}`, { headers: { authorization: `Bearer ${orgKey}` } }, (res) => {
        res.once("data", (first: Buffer) => {
          res.pause();
          resolve({ res, first, abort: () => req.destroy() });
        });
        res.once("error", () => {});
      });
      req.on("error", () => {});
      req.once("error", reject);
      req.end();
    });
  }

  /** The app's one backend, as PostgreSQL sees it. */
  const backend = async () => {
    const [row] = await db.sql<{ state: string | null; query: string }[]>`
      select state, query from pg_stat_activity where application_name = ${APP_NAME}`;
    return row;
  };
  const exporting = (b: { state: string | null; query: string } | undefined) =>
    b !== undefined && b.state !== "idle" && b.query.includes("from usage_events");

  it("reads rows from PostgreSQL only as the client takes them: a client that stops reading holds the cursor open, and gets every row when it reads on", async () => {
    const { res, first } = await startExport();
    expect(res.statusCode).toBe(200);
    expect(first.toString("utf8")).toMatch(/^id,occurred_at,recorded_at,product,model,/);
    // Unthrottled, the server would read all rows and end the query within moments; paused, the
    // query stays open, however long we wait (2 s here, polled).
    const pausedAt = Date.now();
    while (Date.now() - pausedAt < 2_000) {
      expect(exporting(await backend()), "the cursor is still open while the client does not read").toBe(true);
      await new Promise((r) => setTimeout(r, 200));
    }
    let text = first.toString("utf8");
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      text += chunk;
    });
    res.resume();
    await new Promise((resolve) => res.once("end", resolve));
    const lines = text.trimEnd().split("\n");
    expect(lines.length - 1).toBe(ROWS);
    await waitFor(async () => !exporting(await backend()), { what: "the cursor closed after the last row" });
  }, 120_000);

  it("a client that disconnects mid-export ends the query: the connection goes back to the pool and the export slot is free", async () => {
    const { res, abort } = await startExport();
    expect(res.statusCode).toBe(200);
    expect(exporting(await backend())).toBe(true);
    abort();
    await waitFor(async () => !exporting(await backend()), {
      what: "the export's query to end after the client left",
      timeoutMs: 30_000,
    });
    // The pool's single connection serves the next query, and the one export slot is free again.
    const answered = await Promise.race([
      appSql`select 1 as one`.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 10_000)),
    ]);
    expect(answered).toBe(true);
    const next = await app.call("GET", "/v1/billing/exports/transactions.csv?start=2026-01-01&end=2027-01-01", {
      key: orgKey,
    });
    expect(next.status, next.text).toBe(200);
    expect(next.text.split("\n")[0]).toBe("id,created_at,kind,amount_usd,amount_nano_usd,description,metadata");
    await expectLedgerConsistent(db.sql);
  }, 120_000);
});
