/**
 * The outcome of a cycle never depends on when the workers closed it: the window between a
 * cycle's end and the close (the worker closes due cycles every minute) once let a subscription
 * change, or a hold past its expiry the sweeper had not reached, reach back into the cycle that
 * had ended. Each case runs the same story with the close on time and late, and compares.
 * (Found by a helper's attack; each test failed before.)
 */
import { describe, expect } from "vitest";
import { expireHolds } from "../../src/billing/holds.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));

async function invoices(app: TestApp, org: { orgKey: string }) {
  const list = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
  const out = [];
  for (const i of list.json.data) {
    out.push((await app.call("GET", `/v1/billing/invoices/${i.id}`, { key: org.orgKey })).json);
  }
  return out.sort((a, b) => a.period.start.localeCompare(b.period.start));
}
const subscriptionLines = (inv: { lines: { kind: string; amount_nano_usd: string }[] }) =>
  inv.lines.filter((l) => l.kind === "subscription").map((l) => l.amount_nano_usd);

describe("subscriptions across a cycle boundary not closed yet", () => {
  it.scoped({ appOptions: { clock } });
  const closeAll = (app: TestApp, orgId: string) =>
    app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: orgId } });
  const sub = (app: TestApp, orgId: string, plan: string) =>
    app.call("PUT", `/v1/admin/orgs/${orgId}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: plan } });
  const cancel = (app: TestApp, orgId: string) =>
    app.call("DELETE", `/v1/admin/orgs/${orgId}/subscription`, { key: TEST_ADMIN_KEY });

  it("a cycle charged for a plan gets that plan's included credits, whenever the worker closes the previous cycle", async ({
    app,
    db,
  }) => {
    // Two identical orgs; only the worker's timing differs: the October close runs 5 s after the
    // boundary for one, 60 s after it (after a cancel at 00:00:30) for the other.
    const result: Record<string, { novCharged: string[]; novCredits: string }> = {};
    for (const order of ["close-then-cancel", "cancel-then-close"] as const) {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(order);
      await app.grant(org.id, "1000");
      expect((await sub(app, org.id, "team")).status).toBe(200);
      if (order === "close-then-cancel") {
        clock.set(new Date("2026-11-01T00:00:05Z"));
        await closeAll(app, org.id);
        clock.set(new Date("2026-11-01T00:00:30Z"));
        expect((await cancel(app, org.id)).status).toBe(200);
      } else {
        clock.set(new Date("2026-11-01T00:00:30Z"));
        expect((await cancel(app, org.id)).status).toBe(200);
        clock.set(new Date("2026-11-01T00:01:00Z"));
        await closeAll(app, org.id);
      }
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeAll(app, org.id);
      const invs = await invoices(app, org);
      const nov = invs.find((i) => i.period.start === "2026-11-01T00:00:00.000Z");
      const [g] = await db.sql<{ s: string }[]>`
        select coalesce(sum(amount), 0)::text as s from credit_grants
        where org_id = ${org.id} and source = 'plan' and expires_at = '2026-12-01T00:00:00Z'`;
      result[order] = { novCharged: subscriptionLines(nov), novCredits: g!.s };
    }
    await expectLedgerConsistent(db.sql);
    // November is charged the Team plan in both orders ...
    expect(result["close-then-cancel"]!.novCharged).toEqual(["200000000000"]);
    // ... so it must have had November's included credits in both: the worker's timing decides nothing.
    expect(result["cancel-then-close"]).toEqual(result["close-then-cancel"]);
  });

  it("an org that cancelled mid-cycle and subscribes again before that cycle is closed is still charged for it", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Resub Co");
    await app.grant(org.id, "1000");
    expect((await sub(app, org.id, "team")).status).toBe(200); // October's $250 of included credits
    clock.set(new Date("2026-10-20T10:00:00Z"));
    expect((await cancel(app, org.id)).status).toBe(200); // cancelled in October: October is charged (arrears)
    clock.set(new Date("2026-11-01T00:00:30Z")); // the worker has not closed October yet
    expect((await sub(app, org.id, "team")).status).toBe(200);
    clock.set(new Date("2026-11-01T00:01:00Z"));
    await closeAll(app, org.id);
    const [oct] = await invoices(app, org);
    expect(oct.period.start).toBe("2026-10-01T00:00:00.000Z");
    await expectLedgerConsistent(db.sql);
    // Had the worker closed October at 00:00:05 (before the new subscription), October carried
    // the Team plan's $200; the org used Team (and its $250 of credits) from 5 to 20 October.
    expect(subscriptionLines(oct)).toEqual(["200000000000"]);
  });

  it("a plan change asked for in the new cycle before the worker closed the previous one waits for the next cycle", async ({
    app,
  }) => {
    const seen: Record<string, string[][]> = {};
    for (const timing of ["on-time", "late"] as const) {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(`change ${timing}`);
      await app.grant(org.id, "1000");
      expect((await sub(app, org.id, "team")).status).toBe(200);
      if (timing === "on-time") {
        clock.set(new Date("2026-11-01T00:00:05Z"));
        await closeAll(app, org.id);
      }
      clock.set(new Date("2026-11-01T00:00:30Z"));
      expect((await sub(app, org.id, "free")).status).toBe(200); // "a plan change pending for the next cycle"
      clock.set(new Date("2026-11-01T00:01:00Z"));
      await closeAll(app, org.id);
      clock.set(new Date("2026-12-01T00:00:05Z"));
      await closeAll(app, org.id);
      seen[timing] = (await invoices(app, org)).map(subscriptionLines);
    }
    // On time: October Team, November Team (the change takes effect on 1 December).
    expect(seen["on-time"]).toEqual([["200000000000"], ["200000000000"]]);
    expect(seen.late).toEqual(seen["on-time"]);
  });

  it("the invoice is paid from credits whether or not the sweep ran before the close", async ({ app, db }) => {
    const seen: Record<string, unknown> = {};
    for (const swept of [true, false]) {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(`lapsed ${swept}`);
      await app.grant(org.id, "20.00"); // paid-like, no expiry: exactly the Pro plan's price
      expect(
        (
          await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
            key: TEST_ADMIN_KEY,
            body: { plan_id: "pro" },
          })
        ).status,
      ).toBe(200);
      await app.metering.ready();
      // A $10 hold taken at 23:59:58 with a 5 s ttl: it lapses at 00:00:03, unused.
      clock.set(new Date("2026-10-31T23:59:58Z"));
      await app.metering.authorize(
        {
          orgId: org.id,
          product: "api",
          model: undefined,
          estimate: { requests: 100_000n },
          idempotencyKey: undefined,
          ttlSeconds: 5,
        },
        clock(),
      );
      clock.set(new Date("2026-11-01T00:00:04Z"));
      if (swept) await expireHolds(contextAt(db.sql, clock()));
      clock.set(new Date("2026-11-01T00:00:05Z"));
      await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
      const [inv] = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
      const bal = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
      seen[swept ? "swept" : "not swept"] = {
        status: inv.status,
        amount_due: inv.amount_due_nano_usd,
        balance: bal.balance_nano_usd,
      };
    }
    await expectLedgerConsistent(db.sql);
    expect(seen.swept).toEqual({ status: "paid", amount_due: "0", balance: expect.any(String) });
    expect(seen["not swept"]).toEqual(seen.swept);
  });

  it("a short cycle that starts an upgrade (an early close) gets the new plan's share of the month's credits, less what the month had", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-02T10:00:00Z"));
    const org = await app.createOrg("Upgrade Co");
    await app.grant(org.id, "1000");
    const put = (plan: string) =>
      app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: plan } });
    expect((await put("free")).status).toBe(200); // November: Free, $5 of included credits
    clock.set(new Date("2026-11-10T00:00:00Z"));
    expect((await put("team")).status).toBe(200); // pending for the next cycle
    clock.set(new Date("2026-11-16T00:00:00Z"));
    const ended = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: org.id, end_current_cycle_now: true },
    });
    expect(ended.json.invoices_created).toBe(1);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    const [short] = await db.sql<{ id: string }[]>`
      select id from invoices where org_id = ${org.id} and period_start = '2026-11-16T00:00:00Z'`;
    const lines = await db.sql<{ description: string; amount: string }[]>`
      select description, amount::text from invoice_lines where invoice_id = ${short!.id} and kind = 'subscription'`;
    const grants = await db.sql<{ amount: string; reason: string }[]>`
      select amount::text, reason from credit_grants where org_id = ${org.id} and source = 'plan' and expires_at = '2026-12-01T00:00:00Z'
      order by created_at`;
    await expectLedgerConsistent(db.sql);
    // The short cycle 16 Nov - 1 Dec is charged Team, half a month of it ...
    expect(lines).toEqual([{ description: expect.stringContaining("Team plan (prorated"), amount: "100000000000" }]);
    // ... and has half a month of Team's $250, less Free's $5 already granted for November.
    expect(grants).toEqual([
      { amount: "5000000000", reason: expect.stringContaining("Free plan") },
      { amount: "120000000000", reason: expect.stringContaining("Team plan") },
    ]);
    // December's close granted December's $250; an early close within December, on the same
    // plan, grants nothing more.
    clock.set(new Date("2026-12-10T00:00:00Z"));
    const again = await app.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: org.id, end_current_cycle_now: true },
    });
    expect(again.json.invoices_created, again.text).toBe(1);
    const [count] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from credit_grants where org_id = ${org.id} and source = 'plan'`;
    expect(count?.n).toBe(3);
  });

  it("the new cycle's included credits, granted by whichever comes first of two replicas' metering and the close, are granted once", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Racing Co");
    await app.grant(org.id, "10.00");
    const put = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "team" },
    });
    expect(put.status).toBe(200);
    // Two more API processes on the same database, each with its own memory of cycle ends.
    const replicas = [app, createTestApp({ sql: db.appSql, clock }), createTestApp({ sql: db.appSql, clock })];
    clock.set(new Date("2026-11-01T00:00:10Z")); // October not closed yet
    let n = 0;
    const report = (r: TestApp) =>
      r.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: `race-${++n}`,
              org_id: org.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 100 },
            },
          ],
        },
      });
    const answers = await Promise.all([
      ...replicas.flatMap((r) => [report(r), report(r), report(r)]),
      app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } }),
    ]);
    for (const a of answers) expect(a.status, a.text).toBe(200);
    const grants = await db.sql<{ amount: string; consumed: string }[]>`
      select amount::text, consumed::text from credit_grants
      where org_id = ${org.id} and source = 'plan' and expires_at = '2026-12-01T00:00:00Z'`;
    // One grant of November's $250, and the nine reports' $0.09 drawn from it.
    expect(grants).toEqual([{ amount: "250000000000", consumed: "90000000" }]);
    await expectLedgerConsistent(db.sql);
  });
});
