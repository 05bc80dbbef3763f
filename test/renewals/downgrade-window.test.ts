/**
 * A renewal downgrade (collectRenewal after the last failed attempt) is a change of plan, but it
 * does not close the org's ended cycles first, as subscribe and cancel now do: landing between a
 * cycle's end and the worker's close, it makes the ended cycle (used under the paid plan, with its
 * credits) charged the free plan. README: "A subscription change (subscribe, change of plan,
 * cancel) first closes every cycle of the org that has ended, so it never reaches back into one".
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const clock = manualClock(new Date("2026-09-05T10:00:00Z"));

describe("a renewal downgrade between a cycle's end and its close", () => {
  it.scoped({ appOptions: { clock } });
  const closeAll = (app: TestApp, orgId: string) =>
    app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: orgId } });

  it("does not make the ended cycle free", async ({ app, db }) => {
    const seen: Record<string, unknown> = {};
    for (const timing of ["on-time", "late"] as const) {
      clock.set(new Date("2026-09-05T10:00:00Z"));
      const org = await app.createOrg(`downgrade-${timing}`);
      const put = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
        key: TEST_ADMIN_KEY,
        body: { plan_id: "team" },
      });
      expect(put.status).toBe(200);
      // September closes with its $200 unpaid: an open invoice, whose renewal attempts fail (no card).
      clock.set(new Date("2026-10-01T00:00:05Z"));
      await closeAll(app, org.id);
      const [sep] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
        select id, status, issued_at from invoices where org_id = ${org.id}`;
      expect(sep?.status).toBe("open");
      const processor = {} as Processor;
      const step = async (at: Date) => {
        const ctx = contextAt(db.sql, at);
        await ctx.catalog.refresh();
        return collectRenewal(ctx, { invoiceId: sep?.id ?? "", processor });
      };
      for (const d of [0, 1, 3, 7])
        expect(await step(new Date(sep!.issued_at.getTime() + d * 86_400_000))).toBe("failed");
      // October is used under Team. The sweep's next call (the workers were down, or it just
      // came first) lands 30 s after the boundary; the close runs at 00:00:00 on time, 00:01 late.
      if (timing === "on-time") {
        clock.set(new Date("2026-11-01T00:00:00Z"));
        await closeAll(app, org.id);
      }
      expect(await step(new Date("2026-11-01T00:00:30Z"))).toBe("downgraded");
      clock.set(new Date("2026-11-01T00:01:00Z"));
      await closeAll(app, org.id);
      const lines = await db.sql<{ amount: string; description: string }[]>`
        select l.amount::text, l.description from invoice_lines l join invoices i on i.id = l.invoice_id
        where i.org_id = ${org.id} and i.period_start = '2026-10-01T00:00:00Z' and l.kind = 'subscription'`;
      const grants = await db.sql<{ amount: string; reason: string }[]>`
        select amount::text, reason from credit_grants
        where org_id = ${org.id} and source = 'plan' and expires_at >= '2026-11-01T00:00:00Z' order by created_at`;
      seen[timing] = { octoberPlan: lines, novemberPlanGrants: grants.map((g) => g.reason.split(":")[0]) };
    }
    await expectLedgerConsistent(db.sql);
    expect(seen["on-time"]).toMatchObject({ octoberPlan: [{ amount: "200000000000", description: "Team plan" }] });
    expect(seen.late).toEqual(seen["on-time"]);
  });
});
