import { describe, expect } from "vitest";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { contextAt } from "../support/context.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it } from "../auto-topup/harness.js";
import { openInvoice } from "./open-invoice.js";

const DAY = 86_400_000;

describe("renewals on a deployment without card payments", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewals-unconfigured" });

  it("nothing is collected by card: no attempt, no move to the free plan, however late", async ({
    app,
    db,
    processor,
    stripe,
  }) => {
    // The workers (with a processor) make the first attempt at issue, declined; the clock they
    // run on stays there. Asked later with no processor, nothing more happens.
    const org = await cardOrg(app, processor, stripe, "4000000000000002");
    const invoice = await openInvoice(app, org);
    const issued = new Date(invoice.issued_at).getTime();
    const attempts = () =>
      db.sql<
        { status: string }[]
      >`select status from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    await waitFor(async () => (await attempts()).map((a) => a.status).join() === "failed", { timeoutMs: 60_000 });
    for (const days of [1, 3, 7, 8, 30]) {
      const later = contextAt(db.sql, new Date(issued + days * DAY));
      expect(await collectRenewal(later, { invoiceId: invoice.id, processor: null })).toBe("processor_not_configured");
    }
    expect(await attempts()).toHaveLength(1);
    expect(await db.sql`select 1 from renewal_downgrades where invoice_id = ${invoice.id}`).toHaveLength(0);
    const [sub] = await db.sql<{ plan_id: string }[]>`select plan_id from subscriptions where org_id = ${org.id}`;
    expect(sub?.plan_id).toBe("team");
    // With the processor back, the schedule goes on where it was: attempt 2, declined again.
    const dayOne = contextAt(db.sql, new Date(issued + DAY));
    expect(await collectRenewal(dayOne, { invoiceId: invoice.id, processor: stripe })).toBe("failed");
    expect((await attempts()).map((a) => a.status)).toEqual(["failed", "failed"]);
  });
});
