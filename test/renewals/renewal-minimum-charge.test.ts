import { describe, expect } from "vitest";
import { cardOrg, chargesTest as it, spend } from "../auto-topup/harness.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";

/**
 * The card processor refuses a charge under its minimum (USD: $0.50) with `amount_too_small`, as the
 * fake does. A renewal invoice's amount due is what the credits did not cover at the close, often a
 * few cents: charged exactly, it was refused four times, taken for a card decline, and an org with a
 * working card was moved to the free plan over $0.30 (helper-90). An attempt now charges at least
 * the minimum; the charge pays the invoice first and the rest stays in the org's credits.
 */
describe("a renewal whose amount due is below the processor's minimum charge", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewal-minimum" });

  it("charges the minimum, pays the invoice and credits the rest; the org keeps its plan", async ({
    app,
    db,
    processor,
    stripe,
    clock,
  }) => {
    // Two orgs on the same terms at the same instants: the first one's invoice says what the
    // cycle's plan charge is; the second one has that charge less $0.30 in other credits.
    const probe = await cardOrg(app, processor, stripe);
    const org = await cardOrg(app, processor, stripe); // 4242: pays
    for (const o of [probe, org]) {
      const sub = await app.call("PUT", `/v1/admin/orgs/${o.id}/subscription`, {
        key: TEST_ADMIN_KEY,
        body: { plan_id: "team" },
      });
      expect(sub.status, sub.text).toBe(200);
      await spend(app, o, Number((await app.balanceNano(o.orgKey)) / 1_000_000_000n));
      expect(await app.balanceNano(o.orgKey)).toBe(0n);
    }
    clock.advance(3 * 86_400_000);
    const close = async (o: { id: string; orgKey: string }) => {
      const closed = await app.call("POST", "/v1/admin/cycles/close", {
        key: TEST_ADMIN_KEY,
        body: { org_id: o.id, end_current_cycle_now: true },
      });
      expect(closed.status, closed.text).toBe(200);
      return (await app.call("GET", "/v1/billing/invoices", { key: o.orgKey })).json.data[0] as {
        id: string;
        status: string;
        amount_due_nano_usd: string;
      };
    };
    const charge = BigInt((await close(probe)).amount_due_nano_usd);
    const left = charge - 300_000_000n;
    await app.grant(org.id, `${left / 1_000_000_000n}.${(left % 1_000_000_000n).toString().padStart(9, "0")}`);
    const invoice = await close(org);
    expect({ status: invoice.status, due: invoice.amount_due_nano_usd }).toEqual({ status: "open", due: "300000000" });

    // The workers make the first attempt at once (it is due at the invoice's issue).
    const paidOrFailed = async () => {
      const [inv] = await db.sql<{ status: string }[]>`select status from invoices where id = ${invoice.id}`;
      const failed = await db.sql`select 1 from renewal_charges where invoice_id = ${invoice.id} and status = 'failed'`;
      return inv?.status === "paid" || failed.length > 0;
    };
    await waitFor(paidOrFailed, { what: "the first renewal attempt's outcome", timeoutMs: 60_000 });
    const attempts = await db.sql<{ attempt: number; status: string; amount: bigint }[]>`
      select attempt, status, amount from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    expect(attempts).toEqual([{ attempt: 1, status: "succeeded", amount: 500_000_000n }]);
    const [inv] = await db.sql<{ status: string }[]>`select status from invoices where id = ${invoice.id}`;
    expect(inv?.status).toBe("paid");
    expect(await app.balanceNano(org.orgKey)).toBe(200_000_000n); // $0.50 charged, $0.30 paid the invoice
    const [plan] = await db.sql<{ plan_id: string }[]>`select plan_id from subscriptions where org_id = ${org.id}`;
    expect(plan?.plan_id).toBe("team");
    await expectLedgerConsistent(db.sql);
  }, 120_000);
});
