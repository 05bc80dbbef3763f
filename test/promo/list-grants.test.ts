import { describe, expect } from "vitest";
import { createBillingContext } from "../../src/billing/context.js";
import { expireGrants } from "../../src/billing/grants.js";
import { manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

/**
 * GET /v1/billing/grants after spending: expiring grants are drawn soonest expiry first and
 * show what is exactly left of them; grants without expiry share the rest of the balance, newest
 * first; the remainders never add up to more than the balance.
 */
const t0 = new Date("2026-11-01T00:00:00Z");
const clock = manualClock(t0);
const DAY = 86_400_000;
let n = 0;

type Grant = { id: string; remaining_nano_usd: string; consumed_nano_usd: string; spend_order: number | null };

async function spend(app: TestApp, org: { id: string; gatewayKey: string }, usd: number) {
  const res = await app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: [
        {
          idempotency_key: `spend-${++n}`,
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "api",
          quantities: { requests: usd * 10_000 }, // $0.0001 a request
        },
      ],
    },
  });
  expect(res.status, res.text).toBe(200);
}

async function grantsOf(app: TestApp, key: string, limit = 100): Promise<Map<string, Grant & Record<string, unknown>>> {
  const all: (Grant & Record<string, unknown>)[] = [];
  let cursor: string | null = null;
  do {
    const res: Awaited<ReturnType<TestApp["call"]>> = await app.call(
      "GET",
      `/v1/billing/grants?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
      { key },
    );
    expect(res.status, res.text).toBe(200);
    all.push(...res.json.data);
    cursor = res.json.next_cursor;
  } while (cursor);
  return new Map(all.map((g) => [g.id, g]));
}
const nano = (usd: number) => String(BigInt(Math.round(usd * 100)) * 10_000_000n);

describe("GET /v1/billing/grants", () => {
  it.scoped({ appOptions: { clock } });

  it("remaining, consumed and spending order after usage draws the expiring grants, exact to the nano-USD", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const at = (days: number) => new Date(t0.getTime() + days * DAY).toISOString();
    const id = async (amount: string, expires?: string) =>
      (await app.grant(org.id, amount, `g-${++n}`, expires ? { expires_at: expires } : {})).json.id as string;
    const a = await id("10"); // no expiry
    clock.advance(1000);
    const b = await id("5", at(10));
    clock.advance(1000);
    const c = await id("3", at(5));
    clock.advance(1000);
    const d = await id("2", at(20));

    await spend(app, org, 4); // C (soonest) whole, then 1 of B
    let g = await grantsOf(app, org.orgKey, 2); // paged two by two
    expect(g.size).toBe(4);
    const row = (x: string) => {
      const r = g.get(x);
      return [r?.remaining_nano_usd, r?.consumed_nano_usd, r?.spend_order];
    };
    expect(row(c)).toEqual([nano(0), nano(3), null]);
    expect(row(b)).toEqual([nano(4), nano(1), 1]);
    expect(row(d)).toEqual([nano(2), nano(0), 2]);
    expect(row(a)).toEqual([nano(10), nano(0), 3]);
    expect(g.get(a)).toMatchObject({ source: "operator", source_id: null, expires_at: null, expired: false });
    const balance = async () =>
      (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance as number;
    expect(await balance()).toBe(16);

    // B expires with 4 unused: gone from the balance at once, its expiry posted by the worker.
    clock.set(new Date(t0.getTime() + 12 * DAY));
    g = await grantsOf(app, org.orgKey);
    expect(g.get(b)).toMatchObject({ expired: true, remaining_nano_usd: nano(0), consumed_nano_usd: nano(1) });
    expect(g.get(b)?.expired_amount).toBeNull();
    expect(row(d)).toEqual([nano(2), nano(0), 1]);
    expect(row(a)).toEqual([nano(10), nano(0), 2]);
    expect(await expireGrants(createBillingContext({ sql: db.appSql, clock }))).toBe(2); // B and C
    g = await grantsOf(app, org.orgKey);
    expect(g.get(b)).toMatchObject({ expired_amount_nano_usd: nano(4), remaining_nano_usd: nano(0) });
    expect(g.get(c)).toMatchObject({ expired: true, expired_amount_nano_usd: nano(0), consumed_nano_usd: nano(3) });
    expect(await balance()).toBe(12);

    // $11 more: D whole, then 9 of the balance; A (no expiry) keeps what is left of it.
    await spend(app, org, 11);
    const e = await id("5"); // newer, no expiry: the balance's rest is given to it first
    g = await grantsOf(app, org.orgKey);
    expect(row(d)).toEqual([nano(0), nano(2), null]);
    expect(row(e)).toEqual([nano(5), nano(0), 1]);
    expect(row(a)).toEqual([nano(1), nano(9), 1]);
    expect(await balance()).toBe(6);

    // Spending past zero: nothing remains anywhere, never a negative remainder.
    await spend(app, org, 8);
    g = await grantsOf(app, org.orgKey);
    for (const grant of g.values()) {
      expect(grant.remaining_nano_usd).toBe("0");
      expect(grant.spend_order).toBeNull();
    }
    expect(row(a)).toEqual([nano(0), nano(10), null]);
  });

  it("the remainders never add up to more than the balance, whatever was spent, held or granted", async ({ app }) => {
    clock.set(t0);
    const org = await app.createOrg();
    const sum = async () => {
      const g = await grantsOf(app, org.orgKey);
      return [...g.values()].reduce((s, x) => s + BigInt(x.remaining_nano_usd), 0n);
    };
    const balanceNano = async () =>
      BigInt((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd);
    await app.grant(org.id, "1.5", `s-${++n}`, { expires_at: new Date(t0.getTime() + DAY).toISOString() });
    await app.grant(org.id, "2", `s-${++n}`);
    await app.grant(org.id, "0.25", `s-${++n}`, { expires_at: new Date(t0.getTime() + 2 * DAY).toISOString() });
    expect(await sum()).toBe(await balanceNano());
    // A hold keeps its money in the balance (credits → held): the grants still hold it.
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 5000 } },
    });
    expect(hold.status, hold.text).toBe(201);
    expect(await sum()).toBe(await balanceNano());
    await spend(app, org, 3);
    expect(await sum()).toBeLessThanOrEqual(await balanceNano());
    expect(await sum()).toBe(await balanceNano());
  });

  it("another org's grants are not listed; a bad cursor is a 400", async ({ app }) => {
    const mine = await app.createOrg("Mine");
    const theirs = await app.createOrg("Theirs");
    await app.grant(theirs.id, "9");
    expect((await grantsOf(app, mine.orgKey)).size).toBe(0);
    const bad = await app.call("GET", "/v1/billing/grants?cursor=xyz", { key: mine.orgKey });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("cursor");
  });
});
