import { expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { advisoryWaiters, holdLocks, waitFor } from "../support/lock-waits.js";
import { charge, dispute, paymentIntent, paymentsTest as it, processorId } from "../support/processor.js";

/**
 * reverseOrAwait (src/billing/payments/events.ts) read card_charges (paymentOfCharge) before it
 * took any lock: a charge-only dispute that read it while charge.succeeded (naming the charge and
 * its payment) was still running found no link, waited on the charge's lock, found no top-up and
 * was kept under the charge id, after charge.succeeded had already moved the charge's kept
 * reversals to the payment; a credit naming no charge then never applied it (found by helper-78).
 * The link is now read under the charge's lock. The test holds `card-payment:<pi>` for a moment
 * (as a slow transaction of ours would) only to order the real deliveries; it writes nothing.
 */

it.scoped({ dbOptions: { max: 12 } });

it("a charge-only dispute racing charge.succeeded is taken when the credit names no charge", {
  timeout: 60_000,
}, async ({ app, db }) => {
  const org = await app.linkedOrg();
  const pi = processorId("pi");
  const ch = processorId("ch");
  const d = processorId("dp");
  const base = await advisoryWaiters(db.sql);
  const holder = await holdLocks(
    db.sql,
    (tx) => tx`select pg_advisory_xact_lock(hashtextextended(${`card-payment:${pi}`}, 0))`,
  );
  // charge.succeeded locks ch (sorts first), then waits for pi
  const succeeded = app.deliver(
    app.event("charge.succeeded", {
      ...charge({ id: ch, paymentIntent: pi, cents: 10000, refundedCents: 0 }),
      customer: org.customerId,
    }),
  );
  await waitFor(async () => (await advisoryWaiters(db.sql)) > base, "charge.succeeded waiting");
  // the dispute names only the charge: reads card_charges (nothing committed), then waits for ch
  const disputed = app.deliver(
    app.event("charge.dispute.created", dispute({ id: d, charge: ch, paymentIntent: null, cents: 10000 })),
  );
  await waitFor(async () => (await advisoryWaiters(db.sql)) > base + 1, "dispute waiting");
  await holder.release();
  const [s1, s2] = await Promise.all([succeeded, disputed]);
  expect([s1.status, s2.status]).toEqual([200, 200]);
  // the payment is credited by an event that does not name its charge
  const credit = await app.deliver(
    app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents: 10000 })),
  );
  expect(credit.status).toBe(200);
  // not kept under the charge id: applied by the credit
  const kept = await db.sql<{ outcome: string }[]>`
    select outcome from processor_events where type = 'charge.dispute.created' and details->>'dispute_id' = ${d}`;
  expect(kept.map((k) => k.outcome)).toEqual(["applied_after_payment"]);
  // the dispute of the whole $100 is open: the org keeps nothing
  expect(await app.balanceNano(org.orgKey)).toBe(0n);
  await expectLedgerConsistent(db.sql);
});
