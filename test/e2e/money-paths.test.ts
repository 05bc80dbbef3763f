/**
 * The newest money paths (issues #16 and #17) attacked through two real API processes
 * (bin/api.ts) against one PostgreSQL and one Redis, every racing call split between them.
 *
 * Invariants (each path's own test files have the rest):
 * - promo codes: never more redemptions than max_redemptions, once per org per code;
 * - budgets: N racing authorizations against a hard budget covering exactly K get exactly K; a
 *   PUT racing a DELETE is never a 500;
 * - credit notes: one Idempotency-Key racing makes one note, the others replay it; the notes of
 *   an invoice never exceed its subtotal; numbers unique and gapless;
 * - the ledger stays balanced.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JsonReply, TEST_ADMIN_KEY } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { READY_TIMEOUT_MS, type RunningProcess, startBin, waitForHttp } from "../support/process.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";

describe("money paths through two API processes", () => {
  let db: TestDatabase;
  const procs: RunningProcess[] = [];
  const apis: string[] = [];
  const prefix = uniqueRedisPrefix("money-paths");
  beforeAll(async () => {
    db = await createTestDatabase({ max: 8 });
    const env = {
      DATABASE_URL: db.appUrl,
      REDIS_PREFIX: prefix,
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: "warn",
      DATABASE_POOL_MAX: "6",
    };
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const api = startBin("api.ts", { ...env, PORT: String(port) });
      procs.push(api);
      apis.push(`http://127.0.0.1:${port}`);
      ready.push(waitForHttp(api, `http://127.0.0.1:${port}/readyz`));
    }
    await Promise.all(ready);
  }, READY_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    const redis = createTestRedis();
    await clearRedisPrefix(redis, `{${prefix}}`);
    redis.disconnect();
    await db?.drop();
  });

  let turn = 0;
  /** One call, to the APIs in turn. */
  async function call(method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
    const base = apis[turn++ % apis.length];
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: (text ? JSON.parse(text) : undefined) as JsonReply, text };
  }
  async function createOrg(name: string) {
    const org = await call("POST", "/v1/admin/orgs", TEST_ADMIN_KEY, { name });
    expect(org.status, org.text).toBe(201);
    const key = await call("POST", `/v1/admin/orgs/${org.json.id}/keys`, TEST_ADMIN_KEY, { scope: "org" });
    return { id: org.json.id as string, orgKey: key.json.key as string };
  }
  const grant = (orgId: string, amount: string) =>
    call(
      "POST",
      `/v1/admin/orgs/${orgId}/credits`,
      TEST_ADMIN_KEY,
      { amount, reason: "e2e" },
      {
        "idempotency-key": `e2e-${orgId}-${amount}-${Math.random()}`,
      },
    );

  it("promo: 16 orgs racing for a code of 5 redemptions across both processes get exactly 5", async () => {
    const code = await call("POST", "/v1/admin/promo-codes", TEST_ADMIN_KEY, {
      code: "E2E-RACE",
      amount: "2",
      max_redemptions: 5,
    });
    expect(code.status, code.text).toBe(201);
    const orgs = await Promise.all(Array.from({ length: 16 }, (_, i) => createOrg(`Promo ${i}`)));
    const replies = await Promise.all(
      orgs.flatMap((o) =>
        ["e2e-race", "E2E-RACE"].map((c) => call("POST", "/v1/billing/promo-codes/redeem", o.orgKey, { code: c })),
      ),
    );
    for (const r of replies) expect([201, 409, 422], r.text).toContain(r.status);
    expect(replies.filter((r) => r.status === 201)).toHaveLength(5);
    const [row] = await db.sql<{ n: number; count: number }[]>`
      select (select count(*)::int from promo_redemptions where promo_code_id = c.id) as n, c.redemption_count as count
      from promo_codes c where c.code = 'E2E-RACE'`;
    expect(row).toEqual({ n: 5, count: 5 });
  });

  it("budgets: 30 authorizations racing across both processes against a hard budget of exactly 4; PUT and DELETE racing: no 500", async () => {
    const org = await createOrg("Budgeted");
    expect((await grant(org.id, "100")).status).toBe(201);
    const gateway = await call("POST", "/v1/admin/keys", TEST_ADMIN_KEY, { scope: "gateway", name: "e2e gateway" });
    // zen-pro: 1000 in + 500 out = $0.0075 a request; the budget holds 4.
    const budget = await call("PUT", "/v1/billing/budgets", org.orgKey, {
      scope: "org",
      limit: "0.03",
      enforcement: "hard",
    });
    expect(budget.status, budget.text).toBe(201);
    const replies = await Promise.all(
      Array.from({ length: 30 }, () =>
        call("POST", "/v1/billing/authorize", gateway.json.key, {
          org_id: org.id,
          product: "llm",
          model: "zen-pro",
          estimate: { input_tokens: 1000, output_tokens: 500 },
        }),
      ),
    );
    expect(replies.filter((r) => r.status === 201)).toHaveLength(4);
    for (const r of replies.filter((r) => r.status !== 201)) expect(r.json.error.code).toBe("spend_limit_reached");
    const race = await Promise.all([
      call("DELETE", `/v1/billing/budgets/${budget.json.id}`, org.orgKey),
      call("PUT", "/v1/billing/budgets", org.orgKey, { scope: "org", limit: "0.05", enforcement: "hard" }),
      call("PUT", "/v1/billing/budgets", org.orgKey, { scope: "org", limit: "0.06", enforcement: "soft" }),
    ]);
    for (const r of race) expect(r.status, r.text).toBeLessThan(500);
    await expectLedgerConsistent(db.sql);
  });

  it("credit notes: one key racing is one note (the rest replay it); notes racing past the subtotal never exceed it; numbers gapless", async () => {
    const org = await createOrg("Credited");
    expect((await grant(org.id, "100")).status).toBe(201);
    const adj = await call(
      "POST",
      `/v1/admin/orgs/${org.id}/adjustments`,
      TEST_ADMIN_KEY,
      { amount: "5", description: "Support" },
      { "idempotency-key": "e2e-adj" },
    );
    expect(adj.status, adj.text).toBe(201);
    // A cycle ends at most once a minute on the real clock: one invoice.
    const closed = await call("POST", "/v1/admin/cycles/close", TEST_ADMIN_KEY, {
      org_id: org.id,
      end_current_cycle_now: true,
    });
    expect(closed.status, closed.text).toBe(200);
    const invoice = (await call("GET", "/v1/billing/invoices?limit=1", org.orgKey)).json.data[0];
    expect(invoice.subtotal_nano_usd).toBe("5000000000");
    const note = (key: string, amount: string) =>
      call(
        "POST",
        `/v1/admin/invoices/${invoice.id}/credit-notes`,
        TEST_ADMIN_KEY,
        { lines: [{ description: "SLA", amount }], reason: "e2e" },
        { "idempotency-key": key },
      );
    const same = await Promise.all(Array.from({ length: 6 }, () => note("e2e-shared", "1")));
    expect(same.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    expect(new Set(same.map((r) => r.json.id)).size).toBe(1);
    const racing = await Promise.all(Array.from({ length: 8 }, (_, i) => note(`e2e-${i}`, "2")));
    for (const r of racing) expect([201, 409], r.text).toContain(r.status);
    expect(racing.filter((r) => r.status === 201)).toHaveLength(2); // 1 + 2 + 2 of 5
    const numbers = await db.sql<
      { n: string }[]
    >`select substring(number from 4) as n from credit_notes order by number`;
    expect(numbers.map((r) => Number(r.n))).toEqual(numbers.map((_, i) => i + 1));
    await expectLedgerConsistent(db.sql);
  });
});
