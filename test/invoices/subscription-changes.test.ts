/**
 * A month's plan charge and its plan's included credits go together, however a subscription
 * change meets a cycle's boundary: at its very instant, from a process whose clock is behind, at
 * the same time as another change, across a catalog's price change, or with an early close. Each
 * story here broke that before (found by a helper's attack on the cycle close).
 */
import { describe, expect } from "vitest";
import { closeDueCycles } from "../../src/billing/invoices/close-due-cycles.js";
import { cancelSubscription, subscribe } from "../../src/billing/subscriptions.js";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { contextAt } from "../support/context.js";
import type { TestDatabase } from "../support/database.js";
import { appTest as it } from "../support/fixtures.js";
import { cancel, closeCycles, subscribeTo } from "../support/plan-calls.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const USD = 1_000_000_000n;
const TEAM = { price: 200n * USD, credits: 250n * USD };

/** November 2026 (anchor day 1): the plan charges of its cycles, and its plan credits as granted, ended or not. */
async function november(db: TestDatabase, orgId: string) {
  const charges = await db.sql<{ description: string; amount: bigint }[]>`
    select l.description, l.amount from invoice_lines l join invoices i on i.id = l.invoice_id
    where i.org_id = ${orgId} and l.kind = 'subscription'
      and i.period_start >= '2026-11-01T00:00:00Z' and i.period_end <= '2026-12-01T00:00:00Z'
    order by i.period_start`;
  const grants = await db.sql<{ amount: bigint; expires_at: Date; expired_amount: bigint | null }[]>`
    select amount, expires_at, expired_amount from credit_grants
    where org_id = ${orgId} and source = 'plan' and expires_at > '2026-11-01T00:00:00Z' and expires_at <= '2026-12-01T00:00:00Z'
    order by created_at, id`;
  // What of them the org had for November: an ended grant gives back what it had unspent.
  const credits = grants.reduce((s, g) => s + g.amount - (g.expires_at < DEC_1 ? (g.expired_amount ?? 0n) : 0n), 0n);
  return { charged: charges.reduce((s, c) => s + c.amount, 0n), charges, grants, credits };
}
const DEC_1 = new Date("2026-12-01T00:00:00Z");
/** One usage event of `requests` API requests ($0.0001 each in the stock catalog). */
const usage = (app: TestApp, org: { id: string; gatewayKey: string }, key: string, at: Date, requests = 1) =>
  app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: [
        { idempotency_key: key, org_id: org.id, timestamp: at.toISOString(), product: "api", quantities: { requests } },
      ],
    },
  });

const clock = manualClock();

describe("subscription changes at a cycle's boundary", () => {
  it.scoped({ appOptions: { clock } });

  it.for([-1, 0, 1])(
    "a cancel at 1 Nov %i ms: November has Team's credits exactly when it is charged Team",
    async (offset, { app, db }) => {
      clock.set(new Date("2026-10-05T00:00:00Z"));
      const org = await app.createOrg(`boundary ${offset}`);
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
      clock.set(new Date(Date.parse("2026-11-01T00:00:00Z") + offset));
      expect((await cancel(app, org.id)).status).toBe(200);
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const n = await november(db, org.id);
      // From the cycle's first instant on, a cancel is in it: before, neither; from then, both.
      expect({ charged: n.charged, credits: n.credits }).toEqual(
        offset >= 0 ? { charged: TEAM.price, credits: TEAM.credits } : { charged: 0n, credits: 0n },
      );
      await expectLedgerConsistent(db.sql);
    },
  );

  it.for(["cancel after metering's grant", "change to free after metering's grant", "cancel after the close"])(
    "%s, dated 10 ms before the boundary by its process's clock: November's credits go with its charge",
    async (story, { app, db }) => {
      clock.set(new Date("2026-10-05T00:00:00Z"));
      const org = await app.createOrg(story);
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
      await app.metering.ready();
      clock.set(new Date("2026-11-01T00:00:00.050Z"));
      // Another process moves the org into November: metering's first request grants its credits, or the worker closes October.
      if (story.includes("metering")) expect((await usage(app, org, "u1", clock())).status).toBe(200);
      else await closeDueCycles(contextAt(db.appSql, clock()), { orgId: org.id });
      const behind = new Date("2026-10-31T23:59:59.990Z");
      if (story.startsWith("cancel")) await cancelSubscription(contextAt(db.appSql, behind), { orgId: org.id });
      else await subscribe(contextAt(db.appSql, behind), { orgId: org.id, planId: "free" });
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const n = await november(db, org.id);
      // Made at the boundary instead: November had begun, so it is charged Team and has Team's
      // credits (a change of plan waits for the next cycle; a cancel leaves the running one charged).
      expect({ charged: n.charged, credits: n.credits }).toEqual({ charged: TEAM.price, credits: TEAM.credits });
      await expectLedgerConsistent(db.sql);
    },
  );

  it("through HTTP, two API processes 60 ms apart: a first subscription on the one behind, after the other closed October", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T00:00:00Z"));
    const org = await app.createOrg("behind");
    const behind = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() - 60) });
    clock.set(new Date("2026-11-01T00:00:00.050Z"));
    await closeCycles(app, org.id); // October: no plan, so no November credits
    expect((await subscribeTo(behind, org.id, "team")).status).toBe(200); // its clock: 31 Oct 23:59:59.990
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const n = await november(db, org.id);
    expect({ charged: n.charged, credits: n.credits }).toEqual({ charged: TEAM.price, credits: TEAM.credits });
  });

  it("two first subscriptions at once: the month is charged the plan whose credits it has", async ({ app, db }) => {
    for (let k = 0; k < 6; k++) {
      clock.set(new Date("2026-11-05T00:00:00Z"));
      const org = await app.createOrg(`racing ${k}`);
      const answers = await Promise.all([subscribeTo(app, org.id, "team"), subscribeTo(app, org.id, "free")]);
      expect(answers.map((r) => r.status)).toEqual([200, 200]);
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const n = await november(db, org.id);
      expect([`${n.charged}/${n.credits}`]).toContainEqual(
        expect.stringMatching(/^(0\/5000000000|200000000000\/250000000000)$/),
      );
    }
  });

  it("a subscription taken after a price change in the cycle gets the credits of the version that prices the cycle", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      {
        effectiveAt: "2026-11-20T00:00:00Z",
        plans: (stock) =>
          stock.map((p) => (p.id === "team" ? { ...p, monthly_price: "500.00", included_credits: "600.00" } : p)),
      },
    ]);
    clock.set(new Date("2026-11-25T10:00:00Z"));
    const org = await app.createOrg("new price");
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const n = await november(db, org.id);
    // The cycle began under the 1 Nov version: $200 with $250 (it was $200 with $600).
    expect({ charged: n.charged, credits: n.credits }).toEqual({ charged: TEAM.price, credits: TEAM.credits });
  });
});

describe("an early close and the month's included credits", () => {
  it.scoped({ appOptions: { clock } });

  it.for(["cancel", "free", "none"])(
    "Team from 1 Nov, 30 USD spent, then %s at 16 Nov: an early end then changes nothing of November's charge and credits",
    async (change, { app, db }) => {
      const months: { charged: bigint; credits: bigint }[] = [];
      for (const early of [false, true]) {
        clock.set(new Date("2026-11-01T00:00:00Z"));
        const org = await app.createOrg(`early ${change} ${early}`);
        expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
        await app.metering.ready();
        clock.set(new Date("2026-11-16T00:00:00Z"));
        expect((await usage(app, org, "spend", clock(), 300_000)).status).toBe(200);
        if (change === "cancel") expect((await cancel(app, org.id)).status).toBe(200);
        if (change === "free") expect((await subscribeTo(app, org.id, "free")).status).toBe(200);
        if (early) {
          // A plan that ends or shrinks there keeps its cycle to the boundary: refused, nothing ended.
          const ended = await closeCycles(app, org.id, true);
          if (change === "none") expect(ended.json.invoices_created, ended.text).toBe(1);
          else expect(ended.json.error, ended.text).toMatchObject({ code: "conflict" });
        }
        clock.set(new Date("2026-12-01T00:00:05Z"));
        await closeCycles(app, org.id);
        const n = await november(db, org.id);
        months.push({ charged: n.charged, credits: n.credits });
        await expectLedgerConsistent(db.sql);
      }
      // Team's month: $200 with $250 of credits, whether or not the cycle was ended early (a
      // cancel or a downgrade at an early close used to prorate the charge and keep the credits).
      expect(months).toEqual([
        { charged: TEAM.price, credits: TEAM.credits },
        { charged: TEAM.price, credits: TEAM.credits },
      ]);
    },
  );

  it("a cycle closed early is not paid from its month's own included credits, as at the boundary they would have expired first", async ({
    app,
    db,
  }) => {
    const due: bigint[] = [];
    for (const early of [false, true]) {
      clock.set(new Date("2026-11-01T00:00:00Z"));
      const org = await app.createOrg(`own credits ${early}`); // no money of its own
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
      clock.set(new Date("2026-11-16T00:00:00Z"));
      if (early) expect((await closeCycles(app, org.id, true)).json.invoices_created).toBe(1);
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const [invoiced] = await db.sql<{ due: bigint; applied: bigint }[]>`
        select sum(amount_due)::bigint as due, sum(credits_applied)::bigint as applied from invoices where org_id = ${org.id}`;
      expect(invoiced?.applied).toBe(0n);
      due.push(invoiced?.due ?? -1n);
      await expectLedgerConsistent(db.sql);
    }
    expect(due).toEqual([TEAM.price, TEAM.price]);
  });

  it("an upgrade at an early close: the month's credits stay within what its charges pay for", async ({ app, db }) => {
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg("upgrade");
    expect((await subscribeTo(app, org.id, "pro")).status).toBe(200); // $20 with $20
    clock.set(new Date("2026-11-16T00:00:00Z"));
    expect((await subscribeTo(app, org.id, "team")).json.pending_plan_id).toBe("team");
    expect((await closeCycles(app, org.id, true)).json.invoices_created).toBe(1);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const n = await november(db, org.id);
    // Pro's half ($10, for $10 of credits at its rate) and Team's ($100, for $125): $20 + $105.
    expect(n.charges.map((c) => c.amount)).toEqual([10n * USD, 100n * USD]);
    expect(n.credits).toBe(125n * USD);
  });

  it("an early end before a subscription another process started (its clock ahead) is refused", async ({ app, db }) => {
    clock.set(new Date("2026-11-16T00:00:00Z"));
    const org = await app.createOrg("ahead");
    const ahead = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() + 120_000) });
    expect((await subscribeTo(ahead, org.id, "team")).status).toBe(200); // the whole month's $250
    const ended = await closeCycles(app, org.id, true);
    expect(ended.status, ended.text).toBe(409);
    clock.set(new Date("2026-11-16T00:05:00Z"));
    expect((await closeCycles(app, org.id, true)).json.invoices_created).toBe(1);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const n = await november(db, org.id);
    expect({ charged: n.charged, credits: n.credits }).toEqual({ charged: TEAM.price, credits: TEAM.credits });
  });

  it("a first subscription in the short cycle after an early close gets that cycle's share of the credits", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg("short cycle");
    clock.set(new Date("2026-11-16T00:00:00Z"));
    expect((await closeCycles(app, org.id, true)).json.invoices_created).toBe(1); // 1-16 Nov, no plan
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const n = await november(db, org.id);
    // 15 days of a 30-day month: half of Team's price, half of its credits (it was the whole $250).
    expect({ charged: n.charged, credits: n.credits }).toEqual({
      charged: TEAM.price / 2n,
      credits: TEAM.credits / 2n,
    });
  });
});
