import { readFileSync } from "node:fs";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatUsd } from "../../src/ledger/money.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { READY_TIMEOUT_MS, type RunningProcess, startBundled, waitForHttp } from "../support/process.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";
import { sampleRss } from "../support/rss-sampler.js";
import { seedUsageEvents } from "../support/seed-usage.js";

/**
 * The promise: exports are streamed, so a year of a busy organization never sits in
 * memory. One organization with 1,000,000 usage events in January, exported row by row
 * (`group_by=event`) by the API running as its own process, bundled as the production build
 * bundles it (`npm start`), read whole over HTTP: every row there, in order, right, summing to what the usage report
 * and the ledger say to the nano-USD, while the API's resident memory (VmRSS, sampled every
 * 50 ms from a thread of the test's own) stays under 300 MB.
 */
const ROWS = 1_000_000;
const MAX_RSS_MB = 300;
const START = Date.parse("2026-01-01T00:00:00Z");
const SPACING_MS = 2000; // a million events fill 23 days of January
const LABEL = "million";
/** The catalog's price of one `api` request, nano-USD (as seedUsageEvents prices them). */
const REQUEST_NANO = 100_000n;

describe("a million usage rows exported by the API process (GET /v1/billing/exports/usage.csv?group_by=event)", () => {
  let db: TestDatabase;
  let api: RunningProcess;
  let base: string;
  const prefix = uniqueRedisPrefix("million");
  let org: { id: string; key: string };
  let seeded: bigint;

  async function call(method: string, path: string, key: string, body?: unknown) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        ...(method === "POST" ? { "idempotency-key": `million-${path}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown> & { [k: string]: never };
    expect(res.status, JSON.stringify(json)).toBeLessThan(300);
    return json as Record<string, string>;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    api = await startBundled("api", {
      DATABASE_URL: db.appUrl,
      PORT: String(port),
      REDIS_PREFIX: prefix,
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: "warn",
      EXPORTS_MAX_CONCURRENT: "1",
    });
    await waitForHttp(api, `${base}/readyz`);
    const created = await call("POST", "/v1/admin/orgs", TEST_ADMIN_KEY, { name: "Busy Co", billing_anchor_day: 1 });
    const orgId = created.id as string;
    const key = (await call("POST", `/v1/admin/orgs/${orgId}/keys`, TEST_ADMIN_KEY, { scope: "org" })).key as string;
    await call("POST", `/v1/admin/orgs/${orgId}/credits`, TEST_ADMIN_KEY, { amount: "1000", reason: "usage to come" });
    org = { id: orgId, key };
    const t0 = performance.now();
    ({ total: seeded } = await seedUsageEvents(db.sql, {
      orgId,
      count: ROWS,
      start: new Date(START),
      spacingMs: SPACING_MS,
      label: LABEL,
    }));
    await db.sql`analyze usage_events`;
    console.log(`seeded ${ROWS} usage events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, READY_TIMEOUT_MS + 120_000);

  afterAll(async () => {
    await api?.stop();
    const redis = createTestRedis();
    await clearRedisPrefix(redis, `{${prefix}}`);
    redis.disconnect();
    await db?.drop();
  });

  /** What row i of the export must say: event i of the seed (seedUsageEvents' formulas). */
  function expectedRow(i: number, column: Record<string, number>): Map<number, string> {
    const at = new Date(START + i * SPACING_MS).toISOString();
    const requests = 1 + (i % 7);
    const cost = BigInt(requests) * REQUEST_NANO;
    return new Map([
      [column.id!, `use_seed_${LABEL}_${i}`],
      [column.occurred_at!, at],
      [column.recorded_at!, at],
      [column.product!, "api"],
      [column.model!, ""],
      [column.quantity_requests!, String(requests)],
      [column.quantity_input_tokens!, ""],
      [column.cost_usd!, formatUsd(cost)],
      [column.cost_nano_usd!, cost.toString()],
      [column.api_key_id!, ""],
      [column.project!, i % 3 === 0 ? `proj-${i % 5}` : ""],
      [column.hold_id!, ""],
    ]);
  }

  const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  let rssAtTenthKb = 0;

  it("streams every row, exact and in order, summing to the usage report and the ledger, in under 300 MB of API memory", async () => {
    const rss = sampleRss(api.child.pid!, 50);
    const t0 = performance.now();
    // Read as a finance tool would, line by line as the bytes come, keeping only sums and the
    // first mismatch: this side holds no more of the file than the API does.
    const read = await new Promise<{
      header: string;
      rows: number;
      costSum: bigint;
      first: string;
      last: string;
      mismatch?: string;
      bytes: number;
    }>((resolve, reject) => {
      const req = request(
        `${base}/v1/billing/exports/usage.csv?start=2026-01-01&end=2026-02-01&group_by=event`,
        { headers: { authorization: `Bearer ${org.key}` } },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`export answered ${res.statusCode}`));
          res.setEncoding("utf8");
          let header = "";
          let column: Record<string, number> = {};
          let rows = 0;
          let costSum = 0n;
          let first = "";
          let last = "";
          let mismatch: string | undefined;
          let bytes = 0;
          let rest = "";
          const line = (text: string) => {
            if (!header) {
              header = text;
              column = Object.fromEntries(text.split(",").map((c, j) => [c, j]));
              return;
            }
            const cells = text.split(","); // no cell of this data needs quotes; a quote fails the width check
            if (rows === 0) first = text;
            last = text;
            if (mismatch === undefined) {
              if (cells.length !== Object.keys(column).length) mismatch = `row ${rows}: ${cells.length} cells: ${text}`;
              else
                for (const [j, want] of expectedRow(rows, column))
                  if (cells[j] !== want) {
                    mismatch = `row ${rows}, column ${j}: ${JSON.stringify(cells[j])}, expected ${JSON.stringify(want)}: ${text}`;
                    break;
                  }
            }
            costSum += BigInt(cells[column.cost_nano_usd!] ?? "x");
            rows++;
            if (rows === ROWS / 10) rssAtTenthKb = rssKb(api.child.pid!);
          };
          res.on("data", (chunk: string) => {
            bytes += Buffer.byteLength(chunk);
            const lines = (rest + chunk).split("\n");
            rest = lines.pop() ?? "";
            for (const l of lines) line(l);
          });
          res.once("end", () => {
            if (rest) line(rest); // a last line without its line break would be counted too
            resolve({ header, rows, costSum, first, last, mismatch, bytes });
          });
          res.once("error", reject);
        },
      );
      req.once("error", reject);
      req.end();
    });
    const seconds = (performance.now() - t0) / 1000;
    const memory = await rss.stop();
    const peakMb = memory.peakKb / 1024;
    console.log(
      `exported ${read.rows} rows (${(read.bytes / 1e6).toFixed(0)} MB) in ${seconds.toFixed(1)} s: ${Math.round(read.rows / seconds)} rows/s; API RSS ${(memory.firstKb / 1024).toFixed(0)} MB at the start, ${(rssAtTenthKb / 1024).toFixed(0)} MB after 100,000 rows, peak ${peakMb.toFixed(0)} MB (${memory.samples} samples, longest gap ${memory.maxGapMs} ms)`,
    );

    // Complete and right: the header, a million rows (no more, no fewer), each one the event it should be.
    expect(read.header).toBe(
      "id,occurred_at,recorded_at,product,model,quantity_compute_seconds,quantity_input_tokens,quantity_mb_hours,quantity_output_tokens,quantity_requests,cost_usd,cost_nano_usd,api_key_id,project,hold_id",
    );
    expect(read.rows).toBe(ROWS);
    expect(read.mismatch).toBeUndefined();
    expect(read.first).toBe(
      "use_seed_million_0,2026-01-01T00:00:00.000Z,2026-01-01T00:00:00.000Z,api,,,,,,1,0.0001,100000,,proj-0,",
    );
    // Event 999,999: 1,999,998 s after midnight on January 1st; 999,999 = 7 × 142,857 (1 request) = 3 × 333,333 (a project).
    expect(read.last).toBe(
      "use_seed_million_999999,2026-01-24T03:33:18.000Z,2026-01-24T03:33:18.000Z,api,,,,,,1,0.0001,100000,,proj-4,",
    );

    // The cost column sums to what the seed charged, what the usage report totals for January and
    // what the ledger took from the balance, to the nano-USD.
    expect(read.costSum).toBe(seeded);
    const report = await call("GET", "/v1/billing/usage?period=2026-01", org.key);
    expect(BigInt(report.total_nano_usd!)).toBe(read.costSum);
    const balance = await call("GET", "/v1/billing/balance", org.key);
    expect(BigInt(balance.balance_nano_usd!)).toBe(1000n * 1_000_000_000n - read.costSum);
    await expectLedgerConsistent(db.sql);

    // Streamed: sampled at least every 100 ms on average throughout, the peak stays under the bound.
    expect(memory.samples).toBeGreaterThanOrEqual(Math.floor((seconds * 1000) / 100));
    expect(peakMb).toBeLessThan(MAX_RSS_MB);
    // Flat, not merely under the bound: the last 900,000 rows add next to nothing to what the
    // first 100,000 took (V8's young generation growing to its size, once). Rows piling up in the
    // old generation (bench/RESULTS-exports.md) added ~200 MB here.
    expect(peakMb - rssAtTenthKb / 1024).toBeLessThan(40);
  }, 600_000);
});
