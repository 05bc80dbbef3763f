import { describe, expect } from "vitest";
import { Catalog } from "../../src/billing/catalog.js";
import { closeCycle } from "../../src/billing/invoices/close-cycle.js";
import { closeDueCycles } from "../../src/billing/invoices/close-due-cycles.js";
import { cycleStartingIn } from "../../src/billing/periods.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { contextAt } from "../support/context.js";

describe("invoices and billing cycles", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  let n = 0;
  const usage = (app: TestApp, org: { id: string; gatewayKey: string }, events: Record<string, unknown>[]) =>
    app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: events.map((e) => ({
          idempotency_key: `inv-${++n}`,
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "llm",
          model: "zen-pro",
          quantities: { input_tokens: 1000, output_tokens: 500 },
          ...e,
        })),
      },
    });
  const closeAll = (app: TestApp, orgId?: string) =>
    app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: orgId ? { org_id: orgId } : {} });

  it("rolls a cycle's usage and subscription into one itemized invoice whose totals equal its lines and the ledger", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Invoiced Co");
    await app.grant(org.id, "100");
    expect(
      (
        await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
          key: TEST_ADMIN_KEY,
          body: { plan_id: "pro" },
        })
      ).status,
    ).toBe(200);
    await usage(app, org, [
      {},
      {},
      { model: "zen-mini", quantities: { input_tokens: 1_000_000 } },
      { product: "api", model: undefined, quantities: { requests: 10 } },
    ]);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    const closed = await closeAll(app, org.id);
    expect(closed.json).toMatchObject({ invoices_created: 1 });

    const list = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
    expect(list.json.data).toHaveLength(1);
    const invoice = (await app.call("GET", `/v1/billing/invoices/${list.json.data[0].id}`, { key: org.orgKey })).json;
    expect(invoice.number).toMatch(/^INV-\d{6}$/);
    expect(invoice.period).toEqual({ start: "2026-10-01T00:00:00.000Z", end: "2026-11-01T00:00:00.000Z" });
    expect(
      invoice.lines.map((l: { kind: string; product: string; model: string; amount_nano_usd: string }) => [
        l.kind,
        l.product,
        l.model,
        l.amount_nano_usd,
      ]),
    ).toEqual([
      ["usage", "api", null, "1000000"],
      ["usage", "llm", "zen-mini", "150000000"],
      ["usage", "llm", "zen-pro", "15000000"],
      ["subscription", null, null, "20000000000"],
    ]);
    const lineSum = invoice.lines.reduce(
      (s: bigint, l: { amount_nano_usd: string }) => s + BigInt(l.amount_nano_usd),
      0n,
    );
    expect(BigInt(invoice.subtotal_nano_usd)).toBe(lineSum);
    expect(BigInt(invoice.subtotal_nano_usd) - BigInt(invoice.credits_applied_nano_usd)).toBe(
      BigInt(invoice.amount_due_nano_usd),
    );
    expect(invoice).toMatchObject({ status: "paid", amount_due: 0, credits_applied: 20.166 });

    // The ledger agrees: usage debits plus the settlement equal the invoice's credits applied.
    const [ledger] = await db.sql`
      select (-sum(e.amount))::text as spent from ledger_entries e join ledger_transactions x on x.id = e.transaction_id
      where x.kind in ('usage', 'invoice_settlement') and e.account_id = ${`org:${org.id}:credits`}`;
    expect(ledger!.spent).toBe(invoice.credits_applied_nano_usd);
    await expectLedgerConsistent(db.sql);
  });

  it("leaves what credits cannot cover as amount due, and an open invoice", async ({ app }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Short Co");
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "team" } }); // $200, includes $250 credits
    await usage(app, org, [{ product: "functions", model: undefined, quantities: { compute_seconds: 1_000_000 } }]); // $20 from the included credits
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [inv] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    // Included credits expire with the cycle: $250 - $20 usage = $230 were left, but they expired at 11-01 00:00.
    expect(inv).toMatchObject({ status: "open", subtotal: 220, credits_applied: 20, amount_due: 200 });
    const paid = await app.call("POST", `/v1/admin/invoices/${inv.id}/pay`, { key: TEST_ADMIN_KEY });
    expect(paid.json.status).toBe("paid");
    const again = await app.call("POST", `/v1/admin/invoices/${inv.id}/void`, { key: TEST_ADMIN_KEY });
    expect(again.status).toBe(409);
  });

  it("closing twice, or many closers racing, yields one invoice", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Race Co");
    await app.grant(org.id, "5");
    await usage(app, org, [{}]);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    const catalog = new Catalog(db.sql);
    await catalog.refresh();
    const period = cycleStartingIn(2026, 10);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        closeCycle(contextAt(db.sql, clock(), { catalog }), { orgId: org.id, period: period }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.invoice.id)).size).toBe(1);
    await closeAll(app, org.id);
    await closeDueCycles(contextAt(db.sql, clock(), { catalog }), { orgId: org.id });
    const rows = await db.sql`select count(*)::int as n from invoices where org_id = ${org.id}`;
    expect(rows[0]!.n).toBe(1);
  });

  it("issued invoices and their lines are immutable in PostgreSQL itself", async ({ db }) => {
    const [inv] = await db.sql`select id, number from invoices where status in ('paid', 'open') limit 1`;
    await expect(db.sql`update invoices set amount_due = 1 where id = ${inv!.id}`).rejects.toThrow(
      /immutable|cannot become/,
    );
    await expect(db.sql`update invoices set subtotal = subtotal + 1 where id = ${inv!.id}`).rejects.toThrow(
      /immutable|cannot become/,
    );
    await expect(db.sql`delete from invoices where id = ${inv!.id}`).rejects.toThrow(/cannot be deleted/);
    await expect(db.sql`update invoice_lines set amount = 0 where invoice_id = ${inv!.id}`).rejects.toThrow(
      /lines cannot/,
    );
    await expect(db.sql`delete from invoice_lines where invoice_id = ${inv!.id}`).rejects.toThrow(/lines cannot/);
    await expect(
      db.sql`insert into invoice_lines (invoice_id, kind, description, amount) values (${inv!.id}, 'adjustment', 'sneaky', 1)`,
    ).rejects.toThrow(/lines cannot/);
    await expect(db.sql`update invoices set status = 'draft' where id = ${inv!.id}`).rejects.toThrow(/cannot become/);
  });

  it("usage that arrives after its cycle closed lands on the next invoice as late usage; the issued one never changes", async ({
    app,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Late Co");
    await app.grant(org.id, "5");
    await usage(app, org, [{}]);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [october] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    const before = (await app.call("GET", `/v1/billing/invoices/${october.id}`, { key: org.orgKey })).json;

    clock.set(new Date("2026-11-01T00:10:00Z"));
    await usage(app, org, [
      { timestamp: "2026-10-31T23:59:00Z" },
      { timestamp: "2026-11-01T00:05:00Z", model: "zen-mini" },
    ]);
    expect((await app.call("GET", `/v1/billing/invoices/${october.id}`, { key: org.orgKey })).json).toEqual(before);

    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [november] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    const detail = (await app.call("GET", `/v1/billing/invoices/${november.id}`, { key: org.orgKey })).json;
    expect(
      detail.lines.map((l: { kind: string; model: string; amount_nano_usd: string }) => [
        l.kind,
        l.model,
        l.amount_nano_usd,
      ]),
    ).toEqual([
      ["usage", "zen-mini", "450000"],
      ["late_usage", "zen-pro", "7500000"],
    ]);
  });

  it("a correction is a line on the next invoice, never an edit", async ({ app }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Adjusted Co");
    await app.grant(org.id, "5");
    await usage(app, org, [{}]);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [october] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    const adj = {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "fix-1" },
      body: { amount: "-0.0075", description: `Credit for ${october.number}`, corrects_invoice_id: october.id },
    };
    expect((await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, adj)).status).toBe(201);
    expect((await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, adj)).json.replayed).toBe(true);
    const changed = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
      ...adj,
      body: { ...adj.body, amount: "-1.00" },
    });
    expect(changed.status).toBe(409);
    const other = await app.createOrg("Other Co");
    const foreign = await app.call("POST", `/v1/admin/orgs/${other.id}/adjustments`, {
      ...adj,
      headers: { "idempotency-key": "x" },
    });
    expect(foreign.status).toBe(404); // october belongs to another org
    expect(foreign.json.error.param).toBe("corrects_invoice_id");
    const missing = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
      ...adj,
      headers: { "idempotency-key": "y" },
      body: { ...adj.body, corrects_invoice_id: "inv_nope" },
    });
    expect(missing.status).toBe(404);
    const balanceBefore = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd;
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [november] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    const detail = (await app.call("GET", `/v1/billing/invoices/${november.id}`, { key: org.orgKey })).json;
    expect(detail.lines).toHaveLength(1);
    expect(detail.lines[0]).toMatchObject({ kind: "adjustment", amount_nano_usd: "-7500000" });
    expect(detail).toMatchObject({ subtotal_nano_usd: "-7500000", amount_due_nano_usd: "0" });
    const balanceAfter = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd;
    expect(BigInt(balanceAfter) - BigInt(balanceBefore)).toBe(7_500_000n);
  });

  it("another org's invoice is a 404; pages of invoices follow the cursor", async ({ app }) => {
    clock.set(new Date("2026-07-05T10:00:00Z"));
    const a = await app.createOrg("Pager A");
    const b = await app.createOrg("Pager B");
    clock.set(new Date("2026-11-02T00:00:00Z"));
    await closeAll(app);
    const pageA = (await app.call("GET", "/v1/billing/invoices?limit=2", { key: a.orgKey })).json;
    expect(pageA.data.map((i: { period: { start: string } }) => i.period.start.slice(0, 7))).toEqual([
      "2026-10",
      "2026-09",
    ]);
    const next = (await app.call("GET", `/v1/billing/invoices?limit=2&cursor=${pageA.next_cursor}`, { key: a.orgKey }))
      .json;
    expect(next.data.map((i: { period: { start: string } }) => i.period.start.slice(0, 7))).toEqual([
      "2026-08",
      "2026-07",
    ]);
    expect(next.has_more).toBe(false);
    const bInvoice = (await app.call("GET", "/v1/billing/invoices", { key: b.orgKey })).json.data[0];
    const cross = await app.call("GET", `/v1/billing/invoices/${bInvoice.id}`, { key: a.orgKey });
    expect(cross.status).toBe(404);
    expect(cross.json.error.code).toBe("not_found");
  });

  it("ends the running cycle now on request: a prorated invoice, then a short cycle to the next anchor", async ({
    app,
  }) => {
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg("Early Co");
    await app.grant(org.id, "100");
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "pro" } });
    await usage(app, org, [{}]);
    clock.set(new Date("2026-11-16T00:00:00Z")); // half of November's 30 days
    const res = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: org.id, end_current_cycle_now: true },
    });
    expect(res.json.invoices_created).toBe(1);
    const [first] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    expect(first.period).toEqual({ start: "2026-11-01T00:00:00.000Z", end: "2026-11-16T00:00:00.000Z" });
    const detail = (await app.call("GET", `/v1/billing/invoices/${first.id}`, { key: org.orgKey })).json;
    expect(detail.lines.find((l: { kind: string }) => l.kind === "subscription").amount_nano_usd).toBe("10000000000"); // $20 x 15/30

    await usage(app, org, [{}]);
    clock.set(new Date("2026-12-01T00:00:01Z"));
    await closeAll(app, org.id);
    const [second] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    expect(second.period).toEqual({ start: "2026-11-16T00:00:00.000Z", end: "2026-12-01T00:00:00.000Z" });
    expect(BigInt(second.subtotal_nano_usd)).toBe(7_500_000n + 10_000_000_000n);
    const bad = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { end_current_cycle_now: true },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("org_id");
  });

  it("a plan change waits for the next cycle: the cycle that got a plan's credits is charged for that plan", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-02T00:00:00Z"));
    const org = await app.createOrg("Switcher Co");
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "team" } });
    const switched = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "free" },
    });
    expect(switched.json).toMatchObject({ plan_id: "team", pending_plan_id: "free" });
    await app.call("DELETE", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY });
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "free" } });
    // One month, one grant of included credits: Team's, whatever happened since.
    expect((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance).toBe(250);

    // Free includes less than Team: the cycle cannot end early (it would keep Team's month of
    // credits for part of Team's price); it runs to its boundary, charged Team.
    clock.set(new Date("2026-11-20T00:00:00Z"));
    const early = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: org.id, end_current_cycle_now: true },
    });
    expect(early.status).toBe(409);
    expect(early.json.error.message).toContain("moves to Free");
    const grants = await db.sql`select count(*)::int as n from credit_grants where org_id = ${org.id}`;
    expect(grants[0]!.n).toBe(1);

    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeAll(app, org.id);
    const [latest] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    const lines = (await app.call("GET", `/v1/billing/invoices/${latest.id}`, { key: org.orgKey })).json.lines;
    expect(lines.map((l: { description: string; amount: string }) => [l.description, l.amount])).toEqual([
      ["Team plan", 200],
    ]);
    const sub = (
      await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "free" } })
    ).json;
    expect(sub).toMatchObject({ plan_id: "free", pending_plan_id: null });
  });
});
