/**
 * A renewal downgrade run by a worker whose clock is a few seconds behind a month boundary, after
 * metering (on time) granted the new month's plan credits. On its own clock it made the ended month
 * free and ended both months' Team credits; a re-subscription on a clock behind then had December
 * charged Team without Team's credits (found by helper-79). The downgrade now runs as any change
 * of plan (atOrgTime): November closes on Team, December is Free without Team's credits, and a
 * change back to Team takes effect at the next cycle.
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;
const admin = { key: TEST_ADMIN_KEY };

describe("renewal downgrade on a clock behind the boundary", () => {
  it.scoped({ appOptions: { clock } });

  for (const resubscribe of [false, true]) {
    it(`after metering granted December's Team credits${resubscribe ? ", then a re-subscription to Team" : ""}`, async ({
      app,
      db,
    }) => {
      const behind = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() - 10_000) });
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(`behind-${resubscribe}`);
      expect(
        (await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { ...admin, body: { plan_id: "team" } }))
          .status,
      ).toBe(200);
      // October closes unpaid: an open invoice whose four attempts fail (no card).
      clock.set(new Date("2026-11-01T00:00:05Z"));
      await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } });
      const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
        select id, status, issued_at from invoices where org_id = ${org.id}`;
      expect(oct?.status).toBe("open");
      const processor = {} as Processor;
      const step = async (at: Date) => {
        const ctx = contextAt(db.sql, at);
        await ctx.catalog.refresh();
        return collectRenewal(ctx, { invoiceId: oct!.id, processor });
      };
      for (const d of [0, 1, 3, 7]) expect(await step(new Date(oct!.issued_at.getTime() + d * DAY))).toBe("failed");

      // December 1, 00:00:01 (on time): the org's first request of December; metering grants
      // December's Team credits ($250), November not closed yet.
      clock.set(new Date("2026-12-01T00:00:01Z"));
      const u = await app.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: "u1",
              org_id: org.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 1 },
            },
          ],
        },
      });
      expect(u.status, u.text).toBe(200);
      const decGrants =
        await db.sql`select amount::text from credit_grants where org_id = ${org.id} and source = 'plan' and expires_at = '2027-01-01T00:00:00Z'`;
      expect(decGrants).toEqual([{ amount: "250000000000" }]);

      // 00:00:03 real: the renewal sweep on a process 10 s behind (23:59:53) downgrades.
      clock.set(new Date("2026-12-01T00:00:03Z"));
      expect(await step(new Date(clock().getTime() - 10_000))).toBe("downgraded");
      if (resubscribe) {
        // 00:00:04 real: the customer takes Team again, on the same process behind.
        const put = await behind.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
          ...admin,
          body: { plan_id: "team" },
        });
        expect(put.status, put.text).toBe(200);
      }
      // The workers close November at 00:00:10, December at January's first seconds.
      clock.set(new Date("2026-12-01T00:00:10Z"));
      expect((await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } })).status).toBe(
        200,
      );
      clock.set(new Date("2027-01-01T00:00:10Z"));
      expect((await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } })).status).toBe(
        200,
      );

      const plan = await db.sql<{ period_start: Date; amount: string; description: string }[]>`
        select i.period_start, l.amount::text, l.description from invoice_lines l join invoices i on i.id = l.invoice_id
        where i.org_id = ${org.id} and l.kind = 'subscription' order by i.period_start`;
      const grants = await db.sql<
        {
          reason: string;
          amount: string;
          consumed: string;
          expired_amount: string | null;
          expires_at: Date;
          created_at: Date;
        }[]
      >`
        select reason, amount::text, consumed::text, expired_amount::text, expires_at, created_at from credit_grants
        where org_id = ${org.id} and source = 'plan' order by created_at`;
      await expectLedgerConsistent(db.sql);
      const nov = plan.find((l) => l.period_start.toISOString() === "2026-11-01T00:00:00.000Z");
      const dec = plan.find((l) => l.period_start.toISOString() === "2026-12-01T00:00:00.000Z");
      // November ran on Team to its end in real time (December's Team credits were already
      // granted when the downgrade came): it is charged Team, as a downgrade a moment later on
      // time would leave it (test/renewals/downgrade-window.test.ts).
      expect(nov).toMatchObject({ amount: "200000000000", description: "Team plan" });
      // December is Free from its first instant: charged nothing, and of Team's credits only what
      // was spent before the downgrade stays spent (the rest ended at once).
      expect(dec).toMatchObject({ amount: "0", description: "Free plan" });
      const dg = grants.filter((g) => g.reason.startsWith("Team plan: included credits until 2027-01-01"));
      const usable = dg.reduce((s, g) => s + BigInt(g.amount) - BigInt(g.expired_amount ?? 0), 0n);
      expect(usable).toBe(dg.reduce((s, g) => s + BigInt(g.consumed), 0n));
      if (resubscribe) {
        const [sub] = await db.sql<{ plan_id: string; pending_plan_id: string | null }[]>`
          select plan_id, pending_plan_id from subscriptions where org_id = ${org.id}`;
        expect(sub).toEqual({ plan_id: "team", pending_plan_id: null }); // December's close applied the change
        const jan = await db.sql<{ amount: string }[]>`
          select amount::text from credit_grants where org_id = ${org.id} and source = 'plan' and expires_at = '2027-02-01T00:00:00Z'`;
        expect(jan).toEqual([{ amount: "250000000000" }]); // Team from January, with Team's credits
      }
    });
  }
});
