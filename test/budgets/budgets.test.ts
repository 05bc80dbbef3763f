import { pino } from "pino";
import { describe, expect } from "vitest";
import { Metering } from "../../src/billing/metering.js";
import { createSql } from "../../src/db/client.js";
import { createApp } from "../../src/http/app.js";
import { createTestApp, type JsonReply, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// zen-pro: input $0.0000025/token, output $0.00001/token → 1000 in + 500 out = $0.0075
const ESTIMATE = { input_tokens: 1000, output_tokens: 500 };
const COST_NANO = 7_500_000n;
/** n requests' worth of USD, as the API's decimal string. */
const usdFor = (n: number) => {
  const nano = COST_NANO * BigInt(n);
  return `${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, "0")}`;
};

describe("budgets: /v1/billing/budgets and the hard check in authorize", () => {
  it.scoped({ dbOptions: { max: 12 } });

  let seq = 0;
  const authorize = (app: TestApp, org: { id: string; gatewayKey: string }, extra: Record<string, unknown> = {}) =>
    app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE, ...extra },
    });
  const report = async (app: TestApp, org: { id: string; gatewayKey: string }, extra: Record<string, unknown>[]) => {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: extra.map((e) => ({
          idempotency_key: `use-${++seq}`,
          org_id: org.id,
          timestamp: app.clock().toISOString(),
          product: "llm",
          model: "zen-pro",
          quantities: ESTIMATE,
          ...e,
        })),
      },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json.rejected, res.text).toBe(0);
    return res;
  };
  const putBudget = (app: TestApp, key: string, body: Record<string, unknown>) =>
    app.call("PUT", "/v1/billing/budgets", { key, body });
  const newKey = async (app: TestApp, orgKey: string, name = "CI") => {
    const res = await app.call("POST", "/v1/billing/keys", { key: orgKey, body: { name } });
    expect(res.status, res.text).toBe(201);
    return res.json as { id: string; key: string };
  };

  it("PUT creates (201) and changes (200) a target's budget; GET shows spend, held and remaining; DELETE stops it", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10");
    const created = await putBudget(app, org.orgKey, { scope: "org", limit: "0.03", enforcement: "hard" });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({
      id: expect.stringMatching(/^bud_/),
      scope: "org",
      target: org.id,
      project: null,
      api_key_id: null,
      enforcement: "hard",
      limit_usd: "0.03",
      spent_nano_usd: "0",
      held_nano_usd: "0",
      remaining_usd: "0.03",
    });
    expect(created.json.period).toEqual({
      start: expect.stringMatching(/-01T00:00:00.000Z$/),
      end: expect.any(String),
    });
    const hold = await authorize(app, org);
    expect(hold.status).toBe(201);
    await report(app, org, [{ hold_id: hold.json.hold_id }, {}]);
    await authorize(app, org);
    const list = await app.call("GET", "/v1/billing/budgets", { key: org.orgKey });
    expect(list.status).toBe(200);
    expect(list.json.data).toHaveLength(1);
    expect(list.json.data[0]).toMatchObject({
      spent_nano_usd: (2n * COST_NANO).toString(),
      held_nano_usd: COST_NANO.toString(),
      remaining_nano_usd: (30_000_000n - 3n * COST_NANO).toString(),
    });

    const changed = await putBudget(app, org.orgKey, { scope: "org", limit: "0.0225", enforcement: "soft" });
    expect(changed.status).toBe(200);
    expect(changed.json).toMatchObject({ id: created.json.id, limit_usd: "0.0225", enforcement: "soft" });
    expect(changed.json.remaining_nano_usd).toBe("0");

    const gone = await app.call("DELETE", `/v1/billing/budgets/${created.json.id}`, { key: org.orgKey });
    expect(gone.status).toBe(200);
    expect(gone.json).toMatchObject({ id: created.json.id, deleted: true });
    expect((await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data).toEqual([]);
    expect((await app.call("DELETE", `/v1/billing/budgets/${created.json.id}`, { key: org.orgKey })).status).toBe(404);
  });

  it("bad input is a 4xx in the envelope and changes nothing", async ({ app }) => {
    const org = await app.createOrg();
    const other = await app.createOrg("Other");
    const theirs = await newKey(app, other.orgKey);
    const cases: [Record<string, unknown>, number, string][] = [
      [{ scope: "org", limit: "-1", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "0", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "0.000000000", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "10000000.000000001", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "1e9", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: 5, enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "0.0000000001", enforcement: "hard" }, 400, "limit"],
      [{ scope: "org", limit: "5", enforcement: "maybe" }, 400, "enforcement"],
      [{ scope: "team", limit: "5", enforcement: "hard" }, 400, "scope"],
      [{ scope: "project", limit: "5", enforcement: "hard" }, 400, "project"],
      [{ scope: "project", project: "has space", limit: "5", enforcement: "hard" }, 400, "project"],
      [{ scope: "org", project: "p", limit: "5", enforcement: "hard" }, 400, "project"],
      [{ scope: "key", limit: "5", enforcement: "hard" }, 400, "api_key_id"],
      [{ scope: "org", api_key_id: org.orgKeyId, limit: "5", enforcement: "hard" }, 400, "api_key_id"],
      [{ scope: "key", api_key_id: "key_nope", limit: "5", enforcement: "hard" }, 422, "api_key_id"],
      [{ scope: "key", api_key_id: theirs.id, limit: "5", enforcement: "hard" }, 422, "api_key_id"],
      [{ scope: "org", limit: "5", enforcement: "hard", extra: 1 }, 400, ""],
    ];
    for (const [body, status, param] of cases) {
      const res = await putBudget(app, org.orgKey, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.json.error, JSON.stringify(body)).toMatchObject({
        code: expect.any(String),
        request_id: expect.any(String),
      });
      if (param) expect(res.json.error.param, JSON.stringify(body)).toBe(param);
    }
    // A gateway key cannot be a budget's key: it belongs to no organization.
    const gatewayKeyId = (await app.call("GET", "/v1/admin/keys", { key: TEST_ADMIN_KEY })).json.data[0].id;
    expect(
      (await putBudget(app, org.orgKey, { scope: "key", api_key_id: gatewayKeyId, limit: "5", enforcement: "hard" }))
        .status,
    ).toBe(422);
    // A read-only key lists but cannot write; another org cannot delete ours.
    const readOnly = await app.call("POST", "/v1/billing/keys", {
      key: org.orgKey,
      body: { name: "ro", permissions: [] },
    });
    const ro = readOnly.json.key as string;
    expect((await putBudget(app, ro, { scope: "org", limit: "5", enforcement: "hard" })).json.error.code).toBe(
      "insufficient_scope",
    );
    const mine = await putBudget(app, org.orgKey, { scope: "org", limit: "5", enforcement: "hard" });
    expect(mine.status).toBe(201);
    expect((await app.call("GET", "/v1/billing/budgets", { key: ro })).json.data).toHaveLength(1);
    expect((await app.call("DELETE", `/v1/billing/budgets/${mine.json.id}`, { key: ro })).status).toBe(403);
    expect((await app.call("DELETE", `/v1/billing/budgets/${mine.json.id}`, { key: other.orgKey })).status).toBe(404);
    expect((await app.call("GET", "/v1/billing/budgets", { key: other.orgKey })).json.data).toEqual([]);
    for (const id of ["x".repeat(65), "bud_%00", "' or 1=1 --"]) {
      const res = await app.call("DELETE", `/v1/billing/budgets/${encodeURIComponent(id)}`, { key: org.orgKey });
      expect([400, 404], id).toContain(res.status);
    }
    expect((await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data).toHaveLength(1);
  });

  it("at most 100 budgets per organization (409 conflict beyond); a deleted one frees its place", async ({ app }) => {
    const org = await app.createOrg();
    for (let i = 0; i < 100; i++) {
      const res = await putBudget(app, org.orgKey, {
        scope: "project",
        project: `p-${i}`,
        limit: "1",
        enforcement: "soft",
      });
      expect(res.status, res.text).toBe(201);
    }
    const over = await putBudget(app, org.orgKey, { scope: "org", limit: "1", enforcement: "hard" });
    expect(over.status).toBe(409);
    expect(over.json.error.code).toBe("conflict");
    // Changing an existing one is not a new budget.
    expect(
      (await putBudget(app, org.orgKey, { scope: "project", project: "p-3", limit: "2", enforcement: "hard" })).status,
    ).toBe(200);
    const first = (await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data[0];
    expect((await app.call("DELETE", `/v1/billing/budgets/${first.id}`, { key: org.orgKey })).status).toBe(200);
    expect((await putBudget(app, org.orgKey, { scope: "org", limit: "1", enforcement: "hard" })).status).toBe(201);
  }, 120_000);

  it("N racing authorizations from several replicas against a hard key budget covering exactly K get exactly K holds", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const ci = await newKey(app, org.orgKey);
    const K = 7;
    const N = 40;
    const budget = await putBudget(app, org.orgKey, {
      scope: "key",
      api_key_id: ci.id,
      limit: usdFor(K),
      enforcement: "hard",
    });
    expect(budget.status).toBe(201);
    const replicas = [0, 1, 2].map(() => {
      const sql = createSql(db.appUrl, { max: 4 });
      return {
        sql,
        app: createApp({
          sql,
          config: app.config,
          clock: () => new Date(),
          logger: pino({ level: "silent" }),
          metering: new Metering(sql),
        }),
      };
    });
    const body = JSON.stringify({
      org_id: org.id,
      product: "llm",
      model: "zen-pro",
      estimate: ESTIMATE,
      api_key_id: ci.id,
    });
    const answers = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const res = await replicas[i % 3]!.app.request("/v1/billing/authorize", {
          method: "POST",
          body,
          headers: { authorization: `Bearer ${org.gatewayKey}`, "content-type": "application/json" },
        });
        return { status: res.status, json: (await res.json()) as JsonReply };
      }),
    );
    await Promise.all(replicas.map((r) => r.sql.end()));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(K);
    const refused = answers.filter((a) => a.status === 402);
    expect(refused).toHaveLength(N - K);
    for (const r of refused) {
      expect(r.json.error).toMatchObject({
        type: "billing_error",
        code: "spend_limit_reached",
        budget: {
          id: budget.json.id,
          scope: "key",
          target: ci.id,
          limit_nano_usd: (COST_NANO * BigInt(K)).toString(),
          spent_nano_usd: "0",
          held_nano_usd: (COST_NANO * BigInt(K)).toString(),
        },
      });
    }
    // Requests without that key are not under its budget.
    expect((await authorize(app, org)).status).toBe(201);
    const [held] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from holds where org_id = ${org.id} and api_key_id = ${ci.id} and status = 'active'`;
    expect(held!.n).toBe(K);
    await expectLedgerConsistent(db.sql);
  });

  it("a key budget and an org budget together: the tighter refuses, either way round", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const ci = await newKey(app, org.orgKey);
    // Key tighter (2 requests) than the org (3).
    const keyBudget = await putBudget(app, org.orgKey, {
      scope: "key",
      api_key_id: ci.id,
      limit: usdFor(2),
      enforcement: "hard",
    });
    const orgBudget = await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(3), enforcement: "hard" });
    const withKey = { api_key_id: ci.id };
    expect((await authorize(app, org, withKey)).status).toBe(201);
    expect((await authorize(app, org, withKey)).status).toBe(201);
    const byKey = await authorize(app, org, withKey);
    expect(byKey.status).toBe(402);
    expect(byKey.json.error.budget).toMatchObject({ id: keyBudget.json.id, scope: "key" });
    expect((await authorize(app, org)).status).toBe(201); // the org's third
    const byOrg = await authorize(app, org);
    expect(byOrg.json.error).toMatchObject({
      code: "spend_limit_reached",
      budget: { id: orgBudget.json.id, scope: "org" },
    });

    // Org tighter than the key: another organization, same shapes the other way round.
    const org2 = await app.createOrg("Two");
    await app.grant(org2.id, "100");
    const ci2 = await newKey(app, org2.orgKey);
    await putBudget(app, org2.orgKey, { scope: "key", api_key_id: ci2.id, limit: usdFor(5), enforcement: "hard" });
    const org2Budget = await putBudget(app, org2.orgKey, { scope: "org", limit: usdFor(2), enforcement: "hard" });
    expect((await authorize(app, org2, { api_key_id: ci2.id })).status).toBe(201);
    expect((await authorize(app, org2, { api_key_id: ci2.id })).status).toBe(201);
    const refused = await authorize(app, org2, { api_key_id: ci2.id });
    expect(refused.json.error).toMatchObject({ code: "spend_limit_reached", budget: { id: org2Budget.json.id } });
    // A soft budget never refuses.
    await putBudget(app, org2.orgKey, { scope: "org", limit: usdFor(2), enforcement: "soft" });
    expect((await authorize(app, org2, { api_key_id: ci2.id })).status).toBe(201);
  });

  it("project budgets apply to the project's requests only; usage reported without a hold is never refused", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    await putBudget(app, org.orgKey, { scope: "project", project: "bot", limit: usdFor(1), enforcement: "hard" });
    expect((await authorize(app, org, { project: "bot" })).status).toBe(201);
    expect((await authorize(app, org, { project: "bot" })).json.error.budget).toMatchObject({
      scope: "project",
      target: "bot",
    });
    expect((await authorize(app, org, { project: "other" })).status).toBe(201);
    await report(app, org, [{ project: "bot" }, { project: "bot" }]);
    const [b] = (await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data;
    expect(b).toMatchObject({ spent_nano_usd: (2n * COST_NANO).toString(), held_nano_usd: COST_NANO.toString() });
  });

  it("a budget made mid-period counts the usage already recorded this period (and not the last), then keeps counting", async ({
    db,
  }) => {
    const clock = manualClock(new Date("2026-10-31T23:59:00Z"));
    const app = createTestApp({ sql: db.appSql, clock });
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const ci = await newKey(app, org.orgKey);
    await report(app, org, [{ api_key_id: ci.id, project: "bot" }]); // recorded in October
    clock.set(new Date("2026-11-10T00:00:00Z"));
    // Occurred in October, recorded in November: the recording time decides.
    await report(app, org, [{ api_key_id: ci.id, timestamp: "2026-10-31T23:58:00Z" }]);
    await report(app, org, [{ project: "bot" }, { api_key_id: ci.id, project: "bot" }, {}]);
    const org2 = await app.createOrg("Other");
    await app.grant(org2.id, "10");
    await report(app, org2, [{}]);

    const put = async (body: Record<string, unknown>) => {
      const res = await putBudget(app, org.orgKey, { limit: "1", enforcement: "soft", ...body });
      expect(res.status, res.text).toBe(201);
      return res.json;
    };
    expect((await put({ scope: "org" })).spent_nano_usd).toBe((4n * COST_NANO).toString());
    expect((await put({ scope: "key", api_key_id: ci.id })).spent_nano_usd).toBe((2n * COST_NANO).toString());
    expect((await put({ scope: "project", project: "bot" })).spent_nano_usd).toBe((2n * COST_NANO).toString());
    await report(app, org, [{ api_key_id: ci.id, project: "bot" }]);
    const spent = Object.fromEntries(
      (await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data.map(
        (b: { scope: string; spent_nano_usd: string }) => [b.scope, b.spent_nano_usd],
      ),
    );
    expect(spent).toEqual({
      org: (5n * COST_NANO).toString(),
      key: (3n * COST_NANO).toString(),
      project: (3n * COST_NANO).toString(),
    });
  });

  it("budget.threshold_reached at 80 % and 100 %, once each per period, again in the next month; soft and hard alike", async ({
    db,
  }) => {
    const clock = manualClock(new Date("2026-11-20T00:00:00Z"));
    const app = createTestApp({ sql: db.appSql, clock });
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    // 1 request = 41.7 %, 2 = 83 %, 3 = 125 % of $0.018.
    const soft = await putBudget(app, org.orgKey, { scope: "org", limit: "0.018", enforcement: "soft" });
    const hard = await putBudget(app, org.orgKey, {
      scope: "project",
      project: "bot",
      limit: "0.018",
      enforcement: "hard",
    });
    const events = async () =>
      db.sql<{ data: { budget_id: string; threshold: number; period: string; spent_nano_usd: string } }[]>`
        select data from billing_events where org_id = ${org.id} and type = 'budget.threshold_reached' order by seq`;
    await report(app, org, [{ project: "bot" }]);
    expect(await events()).toHaveLength(0);
    // Which budget's event of one batch comes first is not specified: compared by threshold, then budget.
    const told = (list: readonly { data: { budget_id: string; threshold: number; period: string } }[]) =>
      list
        .map(
          (e) =>
            `${e.data.threshold} ${e.data.budget_id === soft.json.id ? "soft" : e.data.budget_id === hard.json.id ? "hard" : "other"} ${e.data.period}`,
        )
        .sort();
    await report(app, org, [{ project: "bot" }]);
    expect(told(await events())).toEqual(["80 hard 2026-11", "80 soft 2026-11"]);
    await report(app, org, [{ project: "bot" }]);
    await report(app, org, [{ project: "bot" }, { project: "bot" }]);
    const november = await events();
    expect(told(november)).toEqual(["100 hard 2026-11", "100 soft 2026-11", "80 hard 2026-11", "80 soft 2026-11"]);
    expect(november.find((e) => e.data.threshold === 100 && e.data.budget_id === soft.json.id)!.data).toMatchObject({
      scope: "org",
      target: org.id,
      enforcement: "soft",
      period: "2026-11",
      limit_usd: "0.018",
      spent_nano_usd: (3n * COST_NANO).toString(),
    });

    clock.set(new Date("2026-12-01T00:00:00Z"));
    await report(app, org, [{ project: "bot" }]);
    expect(await events()).toHaveLength(4);
    await report(app, org, [{ project: "bot" }]);
    expect(told((await events()).slice(4))).toEqual(["80 hard 2026-12", "80 soft 2026-12"]);
    // A changed limit re-arms the period's events: lowered under the spend, it tells both at once.
    await putBudget(app, org.orgKey, { scope: "org", limit: "0.01", enforcement: "soft" });
    expect((await events()).slice(6).map((e) => [e.data.budget_id, e.data.threshold])).toEqual([
      [soft.json.id, 80],
      [soft.json.id, 100],
    ]);
    // The same limit again changes nothing.
    await putBudget(app, org.orgKey, { scope: "org", limit: "0.01", enforcement: "soft" });
    expect(await events()).toHaveLength(8);
    // Budget counters equal the usage recorded in each month.
    const counters = await db.sql<{ budget_id: string; period_start: Date; spent: bigint }[]>`
      select budget_id, period_start, spent from budget_periods order by budget_id, period_start`;
    expect(counters.filter((c) => c.budget_id === soft.json.id).map((c) => c.spent)).toEqual([
      5n * COST_NANO,
      2n * COST_NANO,
    ]);
  });
});
