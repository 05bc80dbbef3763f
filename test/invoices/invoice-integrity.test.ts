import { describe, expect } from "vitest";
import { Catalog } from "../../src/billing/catalog.js";
import { closeCycle } from "../../src/billing/invoices/close-cycle.js";
import { closeDueCycles } from "../../src/billing/invoices/close-due-cycles.js";
import { Metering } from "../../src/billing/metering.js";
import { cycleStartingIn } from "../../src/billing/periods.js";
import type { UsageResult } from "../../src/billing/usage.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { contextAt } from "../support/context.js";

/** Issue 11, item 5: nothing in the catalog, the numbering or the arithmetic stops invoicing, and a close never stalls metering. */
describe("invoicing never halts", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  let n = 0;
  const usage = (app: TestApp, org: { id: string; gatewayKey: string }, events: Record<string, unknown>[]) =>
    app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: events.map((e) => ({
          idempotency_key: `int-${++n}`,
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "llm",
          model: "zen-pro",
          quantities: { input_tokens: 1000, output_tokens: 500 },
          ...e,
        })),
      },
    });
  const close = (app: TestApp, orgId: string) =>
    app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: orgId } });
  const invoices = async (app: TestApp, org: { orgKey: string }) =>
    (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
  const detail = async (app: TestApp, org: { orgKey: string }, id: string) =>
    (await app.call("GET", `/v1/billing/invoices/${id}`, { key: org.orgKey })).json;
  const numberOf = (s: string) => Number(s.replace(/^INV-/, ""));

  it("a catalog version that drops a plan still in use keeps charging it as last listed; nobody new can take it", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2027-03-01T00:00:00Z", plans: (stock) => stock.filter((p) => p.id !== "pro") },
    ]);
    clock.set(new Date("2027-02-10T00:00:00Z"));
    const org = await app.createOrg("Grandfathered Co");
    expect(
      (
        await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
          key: TEST_ADMIN_KEY,
          body: { plan_id: "pro" },
        })
      ).status,
    ).toBe(200);

    // February closes into March, whose version no longer lists Pro: March's included credits still come.
    clock.set(new Date("2027-03-01T00:00:05Z"));
    expect((await close(app, org.id)).json).toMatchObject({ invoices_created: 1 });
    clock.set(new Date("2027-04-01T00:00:05Z"));
    expect((await close(app, org.id)).json).toMatchObject({ invoices_created: 1 });
    const [march, february] = await invoices(app, org);
    for (const inv of [march, february]) {
      expect((await detail(app, org, inv.id)).lines).toEqual([
        expect.objectContaining({ kind: "subscription", description: "Pro plan", amount_nano_usd: "20000000000" }),
      ]);
    }
    expect(march.period.start).toBe("2027-03-01T00:00:00.000Z");
    const grants = await db.sql<
      { expires_at: Date; amount: bigint }[]
    >`select expires_at, amount from credit_grants where org_id = ${org.id} order by expires_at`;
    expect(grants.map((g) => [g.expires_at.toISOString().slice(0, 10), g.amount])).toEqual([
      ["2027-03-01", 20_000_000_000n],
      ["2027-04-01", 20_000_000_000n],
      ["2027-05-01", 20_000_000_000n],
    ]);

    const newcomer = await app.createOrg("Latecomer Co");
    const refused = await app.call("PUT", `/v1/admin/orgs/${newcomer.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error.message).toContain('unknown plan "pro"');
  });

  it("a close that rolls back burns no invoice number: numbers stay gap-free", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const x = await app.createOrg("Rolled Back Co");
    const y = await app.createOrg("Next Co");
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const october = cycleStartingIn(2026, 10);
    const now = new Date("2026-11-01T00:00:05Z");
    // A fault in the database at the close's last write (issuing), after everything else was decided.
    await db.sql.unsafe(`
      create function test_refuse_issue() returns trigger language plpgsql as $$
      begin raise exception 'issuing refused by the test'; end $$;
      create trigger test_refuse_issue before update on invoices for each row
        when (new.org_id = '${x.id}' and new.status <> 'draft') execute function test_refuse_issue();`);
    try {
      await expect(closeCycle(contextAt(db.sql, now, { catalog }), { orgId: x.id, period: october })).rejects.toThrow(
        /issuing refused by the test/,
      );
    } finally {
      await db.sql.unsafe("drop trigger test_refuse_issue on invoices; drop function test_refuse_issue()");
    }
    const [last] = await db.sql<{ n: number | null }[]>`select max(substring(number from 5)::int) as n from invoices`;
    const fromY = await closeCycle(contextAt(db.sql, now, { catalog }), { orgId: y.id, period: october });
    const fromX = await closeCycle(contextAt(db.sql, now, { catalog }), { orgId: x.id, period: october });
    expect([numberOf(fromY.invoice.number), numberOf(fromX.invoice.number)]).toEqual([
      (last!.n ?? 0) + 1,
      (last!.n ?? 0) + 2,
    ]);
    // And across everything this file closed: 1..N, each once.
    const all = await db.sql<{ number: string }[]>`select number from invoices order by number`;
    expect(all.map((i) => numberOf(i.number))).toEqual(all.map((_, i) => i + 1));
  });

  it("one organization's failing close never stops the others' invoicing", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const broken = await app.createOrg("Broken Co");
    const fine = await app.createOrg("Fine Co");
    const catalog = new Catalog(db.sql);
    await db.sql.unsafe(`
      create function test_refuse_issue() returns trigger language plpgsql as $$
      begin raise exception 'issuing refused by the test'; end $$;
      create trigger test_refuse_issue before update on invoices for each row
        when (new.org_id = '${broken.id}' and new.status <> 'draft') execute function test_refuse_issue();`);
    try {
      // Every due organization is closed; the failure is reported with the org it belongs to.
      await expect(
        closeDueCycles(contextAt(db.sql, new Date("2026-11-01T00:00:05Z"), { catalog }), { concurrency: 1 }),
      ).rejects.toThrow(broken.id);
    } finally {
      await db.sql.unsafe("drop trigger test_refuse_issue on invoices; drop function test_refuse_issue()");
    }
    expect(await invoices(app, fine)).toHaveLength(1);
    expect(await invoices(app, broken)).toHaveLength(0);
    // The next run closes it.
    await closeDueCycles(contextAt(db.sql, new Date("2026-11-01T00:01:05Z"), { catalog }), { orgId: broken.id });
    expect(await invoices(app, broken)).toHaveLength(1);
  });

  it("credits_applied is never negative, even when a credit exceeds the cycle's charges", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Credited Co");
    await app.grant(org.id, "5");
    await usage(app, org, [{}]); // $0.0075
    const credit = {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "big-credit" },
      body: { amount: "-1.00", description: "Goodwill credit" },
    };
    expect((await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, credit)).status).toBe(201);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await close(app, org.id);
    const [inv] = await invoices(app, org);
    // The $1.00 credit went to the balance; nothing of the invoice was paid by credits on balance.
    expect(inv).toMatchObject({
      subtotal_nano_usd: "-992500000",
      credits_applied_nano_usd: "0",
      amount_due_nano_usd: "0",
      status: "paid",
    });
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd).toBe(
      "5992500000",
    );

    await expect(
      db.sql`insert into invoices (id, number, org_id, period_start, period_end, status, credits_applied, created_at)
             values ('inv_negative', 'T-NEG', ${org.id}, '2030-01-01', '2030-02-01', 'draft', -1, now())`,
    ).rejects.toThrow(/invoices_credits_applied_nonnegative/);
  });

  it("a close does not hold the org's lock while it reads the usage history: a batch of another org in the same lane goes through meanwhile", {
    timeout: 120_000,
  }, async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const a = await app.createOrg("Long History Co");
    const b = await app.createOrg("Neighbour Co");
    await app.grant(a.id, "10");
    await app.grant(b.id, "10");
    // A month of A's usage, enough that reading it takes a while. Written free (cost 0, no
    // ledger movement) to keep the setup fast; the close reads it like any other usage.
    const history = 80_000;
    await db.sql`
      insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version, recorded_at)
      select 'use_hist_' || g, ${a.id}, 'hist-' || g, timestamptz '2026-10-06' + g * interval '1 second', 'llm', 'zen-pro',
             '{"input_tokens": "1000", "output_tokens": "500"}', 0, '2026-01-01', timestamptz '2026-10-06' + g * interval '1 second'
      from generate_series(1, ${history}) g`;
    await db.sql`analyze usage_events`;

    const metering = new Metering(db.sql, { lanes: 1 }); // one lane: A's and B's events share its batches
    await metering.ready();
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const now = new Date("2026-11-01T00:00:05Z");
    const closing = closeCycle(contextAt(db.sql, now, { catalog }), { orgId: a.id, period: cycleStartingIn(2026, 10) });
    closing.catch(() => {}); // awaited below
    const reading = async () =>
      (
        await db.sql`select 1 from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and query like '%jsonb_each_text%'`
      ).length > 0;
    for (let i = 0; !(await reading()); i++) {
      if (i > 1000) throw new Error("the close never started reading usage");
      await new Promise((r) => setTimeout(r, 5));
    }

    // One batch: A's event (late, within the period being closed) and B's.
    const event = (orgId: string, key: string, at: string) => ({
      orgId,
      idempotencyKey: key,
      occurredAt: new Date(at),
      product: "llm",
      model: "zen-pro",
      quantities: { input_tokens: 1000n, output_tokens: 500n },
      holdId: undefined,
    });
    const results = await metering.recordUsageMany(
      [event(a.id, "late-a", "2026-10-31T23:00:00Z"), event(b.id, "b-1", "2026-11-01T00:00:01Z")],
      now,
    );
    expect(results.map((r) => (r as UsageResult).cost)).toEqual([7_500_000n, 7_500_000n]);
    // Both were committed before the close was: its invoice does not exist yet.
    const [pending] = await db.sql<{ n: number }[]>`select count(*)::int as n from invoices where org_id = ${a.id}`;
    expect(pending!.n).toBe(0);

    // A's event, written while the close read, is invoiced exactly once: on this invoice, not again on the next.
    const { invoice } = await closing;
    expect(invoice.lines).toEqual([
      expect.objectContaining({
        kind: "usage",
        model: "zen-pro",
        amount: 7_500_000n,
        quantities: { input_tokens: String((history + 1) * 1000), output_tokens: String((history + 1) * 500) },
      }),
    ]);
    const next = await closeCycle(contextAt(db.sql, new Date("2026-12-01T00:00:05Z"), { catalog }), {
      orgId: a.id,
      period: cycleStartingIn(2026, 11),
    });
    expect(next.invoice.lines).toEqual([]);
  });

  it("a close whose earlier cycle was invoiced after its unlocked read reads again under the lock: nothing is invoiced twice", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Two Closers Co");
    await app.grant(org.id, "5");
    await usage(app, org, [{}]);
    clock.set(new Date("2026-11-05T10:00:00Z"));
    await usage(app, org, [{ model: "zen-mini" }]);
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const now = new Date("2026-12-01T00:00:05Z");
    const waiting = async () =>
      (
        await db.sql<
          { n: number }[]
        >`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`
      )[0]!.n;
    const until = async (n: number) => {
      for (let i = 0; (await waiting()) < n; i++) {
        if (i > 1000) throw new Error(`never ${n} waiting`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    // Hold the org's lock, queue October's close, then November's, which reads the usage before
    // October's invoice exists; October's close gets the lock first (row lock waiters queue in order).
    let october: ReturnType<typeof closeCycle> | undefined;
    let november: ReturnType<typeof closeCycle> | undefined;
    await db.sql.begin(async (tx) => {
      await tx`select 1 from ledger_accounts where id = ${`org:${org.id}:credits`} for update`;
      october = closeCycle(contextAt(db.sql, now, { catalog }), { orgId: org.id, period: cycleStartingIn(2026, 10) });
      await until(1);
      november = closeCycle(contextAt(db.sql, now, { catalog }), { orgId: org.id, period: cycleStartingIn(2026, 11) });
      await until(2);
    });
    const lines = (r: Awaited<ReturnType<typeof closeCycle>>) =>
      r.invoice.lines!.map((l) => [l.kind, l.model, l.amount]);
    expect(lines(await october!)).toEqual([["usage", "zen-pro", 7_500_000n]]);
    expect(lines(await november!)).toEqual([["usage", "zen-mini", 450_000n]]);
  });
});
