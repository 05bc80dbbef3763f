/**
 * An organization made by an API process whose clock is ahead, across a month boundary, has its
 * first cycle in the next month (its created_at's). A subscription made by a process on time,
 * before that boundary, was dated in the month before: it got that month's included credits, and
 * since that month is never a cycle of the org, they were never charged; the next month was
 * charged the plan without its credits (found by helper-75). A change of plan is now dated no
 * earlier than the org's creation (atOrgTime), so it starts in the org's first cycle.
 */
import { describe, expect } from "vitest";
import { createTestApp, manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const USD = 1_000_000_000n;
const admin = { key: TEST_ADMIN_KEY };
const clock = manualClock();

describe("an org created by a process 90 s ahead, subscribed by one on time before the boundary", () => {
  it.scoped({ appOptions: { clock } });

  it("its plan starts at its creation: no month without a charge, none without its credits", async ({ app, db }) => {
    const ahead = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() + 90_000) });
    clock.set(new Date("2026-11-30T23:59:00Z")); // the process ahead reads 1 Dec 00:00:30
    const org = await ahead.createOrg("created ahead");
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { ...admin, body: { plan_id: "team" } });
    expect(sub.status, sub.text).toBe(200);
    expect(sub.json.started_at).toBe("2026-12-01T00:00:30.000Z");
    clock.set(new Date("2026-12-01T00:00:05Z")); // the workers' close: nothing is due for this org yet
    const early = await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } });
    expect(early.json.invoices_created).toBe(0);
    clock.set(new Date("2027-01-01T00:00:10Z"));
    expect((await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } })).status).toBe(200);
    const months = await db.sql<{ month_end: Date; credits: bigint | null; charged: bigint | null }[]>`
      select m.month_end,
             (select sum(amount) from credit_grants where org_id = ${org.id} and source = 'plan' and expires_at = m.month_end)::bigint as credits,
             (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
               where i.org_id = ${org.id} and l.kind = 'subscription' and i.period_end = m.month_end)::bigint as charged
      from (values ('2026-12-01T00:00:00Z'::timestamptz), ('2027-01-01T00:00:00Z'::timestamptz)) m(month_end)
      order by m.month_end`;
    expect(months.map((m) => ({ credits: m.credits ?? 0n, charged: m.charged ?? 0n }))).toEqual([
      { credits: 0n, charged: 0n }, // November: not a cycle of the org
      { credits: 250n * USD, charged: 200n * USD }, // December: Team, with Team's credits
    ]);
    await expectLedgerConsistent(db.sql);
  });
});
