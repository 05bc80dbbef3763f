/**
 * Budgets attacked from the outside (issue #16), over HTTP against the real app and database.
 *
 * Invariants:
 * - A hard budget is never overshot by authorizations: spent this period + held in its scope
 *   stays within its limit whatever races (many requests at once, across keys and projects under
 *   one org budget), except by the documented overrun of usage settled above its estimate or
 *   reported without a hold.
 * - The period's spend is exact (the usage recorded in the calendar month, UTC): deleting,
 *   recreating or changing a budget mid-month never resets it, so none of those lets more through.
 * - One live budget per target, at most MAX_BUDGETS_PER_ORG per org, whatever races.
 * - Bad or racing requests are 4xx in the envelope, never 500: a PUT racing a DELETE of the same
 *   budget included.
 * - The ledger stays balanced.
 */
import { describe, expect } from "vitest";
import { manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// zen-pro: 1000 input + 500 output tokens = $0.0075
const ESTIMATE = { input_tokens: 1000, output_tokens: 500 };
const COST_NANO = 7_500_000n;
const usdNano = (n: number) => (COST_NANO * BigInt(n)).toString();
const usdFor = (n: number) => {
  const nano = COST_NANO * BigInt(n);
  return `${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, "0")}`;
};

describe("budgets under attack", () => {
  const clock = manualClock(new Date("2026-11-30T23:50:00Z"));
  it.scoped({ dbOptions: { max: 12 }, appOptions: { clock } });

  let seq = 0;
  const authorize = (app: TestApp, org: { id: string; gatewayKey: string }, extra: Record<string, unknown> = {}) =>
    app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: ESTIMATE, ...extra },
    });
  const settle = async (
    app: TestApp,
    org: { id: string; gatewayKey: string },
    holdIds: string[],
    extra: Record<string, unknown> = {},
  ) => {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: holdIds.map((hold_id) => ({
          idempotency_key: `atk-use-${++seq}`,
          org_id: org.id,
          timestamp: app.clock().toISOString(),
          product: "llm",
          model: "zen-pro",
          quantities: ESTIMATE,
          hold_id,
          ...extra,
        })),
      },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json.rejected, res.text).toBe(0);
  };
  const putBudget = (app: TestApp, key: string, body: Record<string, unknown>) =>
    app.call("PUT", "/v1/billing/budgets", { key, body });

  it("a PUT racing a DELETE of the same budget is never a 500: the budget is either changed then deleted, or deleted then made anew", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Racing PUT and DELETE");
    for (let round = 0; round < 12; round++) {
      const made = await putBudget(app, org.orgKey, { scope: "org", limit: "5", enforcement: "hard" });
      expect(made.status, made.text).toBe(201);
      const replies = await Promise.all([
        app.call("DELETE", `/v1/billing/budgets/${made.json.id}`, { key: org.orgKey }),
        putBudget(app, org.orgKey, { scope: "org", limit: "6", enforcement: "hard" }),
        putBudget(app, org.orgKey, { scope: "org", limit: "7", enforcement: "soft" }),
      ]);
      for (const r of replies) expect(r.status, r.text).toBeLessThan(500);
      expect(replies[0]!.status).toBe(200);
      const live = await db.sql<{ n: number }[]>`
        select count(*)::int as n from budgets where org_id = ${org.id} and deleted_at is null`;
      expect(live[0]!.n).toBeLessThanOrEqual(1);
      const list = await app.call("GET", "/v1/billing/budgets", { key: org.orgKey });
      for (const b of list.json.data) await app.call("DELETE", `/v1/billing/budgets/${b.id}`, { key: org.orgKey });
    }
  });

  it("deleting and recreating a hard budget mid-month, even racing authorizations, never resets its spend", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-10T10:00:00Z"));
    const org = await app.createOrg("Reset seeker");
    await app.grant(org.id, "100");
    const K = 4;
    const first = await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(K), enforcement: "hard" });
    expect(first.status).toBe(201);
    const holds: string[] = [];
    for (let i = 0; i < K; i++) {
      const h = await authorize(app, org);
      expect(h.status, h.text).toBe(201);
      holds.push(h.json.hold_id);
    }
    await settle(app, org, holds);
    expect((await authorize(app, org)).status).toBe(402);
    // Delete, then recreate, the same and another enforcement, while authorizations race.
    const replies = await Promise.all([
      app.call("DELETE", `/v1/billing/budgets/${first.json.id}`, { key: org.orgKey }),
      ...Array.from({ length: 6 }, () => authorize(app, org)),
      putBudget(app, org.orgKey, { scope: "org", limit: usdFor(K), enforcement: "hard" }),
      ...Array.from({ length: 6 }, () => authorize(app, org)),
    ]);
    for (const r of replies) expect(r.status, r.text).toBeLessThan(500);
    const granted = replies.filter((r) => r.status === 201 && r.json.hold_id).length;
    // Only while no budget was live may anything be granted; once it is back, its spend is the month's.
    const again = await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(K), enforcement: "hard" });
    expect(again.json.spent_nano_usd).toBe((COST_NANO * BigInt(K)).toString());
    expect((await authorize(app, org)).status).toBe(402);
    const [active] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from holds where org_id = ${org.id} and status = 'active'`;
    expect(active!.n).toBe(granted);
    // Raising the limit by one request lets exactly one more through, not a fresh month.
    await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(K + granted + 1), enforcement: "hard" });
    expect((await authorize(app, org)).status).toBe(201);
    expect((await authorize(app, org)).status).toBe(402);
    await expectLedgerConsistent(db.sql);
  });

  it("racing authorizations across keys and projects under one hard org budget get exactly K holds; a key budget holds its own K", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-12T10:00:00Z"));
    const org = await app.createOrg("Many keys");
    await app.grant(org.id, "100");
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const k = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: `k${i}` } });
      expect(k.status, k.text).toBe(201);
      keys.push(k.json.id as string);
    }
    const K = 9;
    await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(K), enforcement: "hard" });
    await putBudget(app, org.orgKey, { scope: "key", api_key_id: keys[0], limit: usdFor(2), enforcement: "hard" });
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        authorize(app, org, {
          ...(i % 4 === 3 ? {} : { api_key_id: keys[i % 3] }),
          ...(i % 5 === 0 ? { project: `p${i % 2}` } : {}),
        }),
      ),
    );
    for (const r of replies) expect([201, 402]).toContain(r.status);
    expect(replies.filter((r) => r.status === 201)).toHaveLength(K);
    const [byKey] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from holds where org_id = ${org.id} and api_key_id = ${keys[0]!} and status = 'active'`;
    expect(byKey!.n).toBeLessThanOrEqual(2);
    await expectLedgerConsistent(db.sql);
  });

  it("across the month boundary: a hold from the old month still counts against the new month's budget until settled", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-30T23:59:59Z"));
    const org = await app.createOrg("Month end");
    await app.grant(org.id, "100");
    await putBudget(app, org.orgKey, { scope: "org", limit: usdFor(2), enforcement: "hard" });
    const a = await authorize(app, org);
    const b = await authorize(app, org);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect((await authorize(app, org)).status).toBe(402);
    clock.set(new Date("2026-12-01T00:00:00Z"));
    // A new month, but both holds are live: nothing more fits.
    expect((await authorize(app, org)).status).toBe(402);
    await settle(app, org, [a.json.hold_id, b.json.hold_id]);
    // Settled in December: December's spend is both, so still nothing fits.
    expect((await authorize(app, org)).status).toBe(402);
    const [budget] = (await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data;
    expect(budget).toMatchObject({ spent_nano_usd: (2n * COST_NANO).toString(), held_nano_usd: "0" });
    expect(budget.period.start).toBe("2026-12-01T00:00:00.000Z");
    await expectLedgerConsistent(db.sql);
  });

  it("usage settling a key's or project's hold without naming them counts against that key's and project's budgets: the hold's attribution", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-14T10:00:00Z"));
    const org = await app.createOrg("Unattributed settles");
    await app.grant(org.id, "100");
    const ci = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "CI" } });
    const K = 2;
    const keyBudget = await putBudget(app, org.orgKey, {
      scope: "key",
      api_key_id: ci.json.id,
      limit: usdFor(K),
      enforcement: "hard",
    });
    await putBudget(app, org.orgKey, { scope: "project", project: "bot", limit: usdFor(K), enforcement: "hard" });
    for (const round of [0, 1]) {
      const holds: string[] = [];
      for (let i = 0; i < K; i++) {
        const h = await authorize(app, org, round === 0 ? { api_key_id: ci.json.id } : { project: "bot" });
        expect(h.status, h.text).toBe(201);
        holds.push(h.json.hold_id);
      }
      // The gateway reports the usage of those holds without the key or project.
      await settle(app, org, holds);
    }
    // The key and the project spent their limits: nothing more is authorized under them.
    const byKey = await authorize(app, org, { api_key_id: ci.json.id });
    expect(byKey.status, byKey.text).toBe(402);
    expect(byKey.json.error.budget).toMatchObject({ id: keyBudget.json.id, spent_nano_usd: usdNano(K) });
    expect((await authorize(app, org, { project: "bot" })).status).toBe(402);
    // The counter and a budget made again from the usage agree.
    const list = (await app.call("GET", "/v1/billing/budgets", { key: org.orgKey })).json.data;
    expect(list.map((b: { spent_nano_usd: string }) => b.spent_nano_usd)).toEqual([usdNano(K), usdNano(K)]);
    await app.call("DELETE", `/v1/billing/budgets/${keyBudget.json.id}`, { key: org.orgKey });
    const again = await putBudget(app, org.orgKey, {
      scope: "key",
      api_key_id: ci.json.id,
      limit: usdFor(K),
      enforcement: "hard",
    });
    expect(again.json.spent_nano_usd).toBe(usdNano(K));
    await expectLedgerConsistent(db.sql);
  });
});
