import { describe, expect } from "vitest";
import { withTransaction } from "../../src/billing/context.js";
import { creditCardTopup } from "../../src/billing/payments/credit-card-topup.js";
import { manualClock } from "../support/app.js";
import { testContext } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { waitFor } from "../support/process.js";
import { creditNote, issueInvoice } from "./invoices.js";

/**
 * A credit note refunded to credits and a card top-up paying the org's open invoices take the
 * organization's lock and the invoice's in the same order (the organization's first), so neither
 * fails with a deadlock: the note used to lock the invoice, then the organization (its grant), while
 * the top-up locks the organization (its posting), then the open invoices.
 */
describe("a credit note to credits racing a card top-up that pays open invoices", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 12 }, appOptions: { clock } });

  it("both succeed: the note is issued, the top-up credited", async ({ app, db }) => {
    const org = await app.createOrg("Due");
    const invoice = await issueInvoice(app, clock, org, { charge: "30" });
    expect(invoice.status).toBe("open");
    const lockWaiters = async () =>
      (
        await db.sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`
      )[0]!.n;
    let note: Promise<{ status: number; text: string }> | undefined;
    let topup: Promise<unknown> | undefined;
    await db.sql.begin(async (tx) => {
      // Holds the note after the locks it takes first (its number is taken after them), so that the
      // top-up arrives while the note holds them.
      await tx`select 1 from credit_note_number_counter for update`;
      note = creditNote(app, invoice.id, { lines: [{ description: "x", amount: "1" }], reason: "r" });
      await waitFor(async () => (await lockWaiters()) >= 1, { timeoutMs: 30_000 });
      topup = withTransaction(testContext(db.appSql, { clock }), (txc) =>
        creditCardTopup(txc, {
          orgId: org.id,
          paymentId: "pi_race",
          chargeId: null,
          currency: "usd",
          amountMinor: 5000n,
        }),
      );
      await waitFor(async () => (await lockWaiters()) >= 2, { timeoutMs: 30_000 });
    });
    const [n, t] = await Promise.allSettled([note!, topup!]);
    const outcome = {
      creditNote: n.status === "fulfilled" ? n.value.status : String(n.reason),
      topup: t.status === "fulfilled" ? t.value : String(t.reason),
    };
    expect(outcome).toEqual({ creditNote: 201, topup: "credited" });
    // The top-up paid the invoice (30 USD of its 50) once the note had been issued.
    const [row] = await db.sql<{ status: string }[]>`select status from invoices where id = ${invoice.id}`;
    expect(row!.status).toBe("paid");
  });
});
