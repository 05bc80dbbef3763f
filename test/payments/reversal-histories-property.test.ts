import fc from "fast-check";
import { expect } from "vitest";
import { modelSettings } from "../model/settings.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import {
  charge,
  dispute,
  paymentIntent,
  paymentsTest as it,
  type PaymentsTestApp,
  type ProcessorEventBody,
  processorId,
} from "../support/processor.js";

/**
 * Generated webhook histories for card payments of two orgs (each: its credit, charge.succeeded,
 * cumulative refunds, up to three disputes with their endings), each event naming both ids or the
 * charge only, the payment's own event naming its charge or not, delivered shuffled, duplicated
 * (the same event id, or the same object under a new one) and in concurrent batches; what fails is delivered again, as the processor
 * would. Oracle, whatever the order: each org ends with credited - min(credited, max refunded +
 * the disputes not won), and no delivery is ever answered 500 (a deadlock between two events of
 * one payment is run again: src/db/deadlock-retry.ts).
 *
 * Found (fixed): a second dispute opened while the first held the whole payment took nothing and
 * was forgotten, so the first's win gave the money back although the second was lost; a refund or
 * dispute naming only its charge waited for ever when charge.succeeded came before the credit and
 * the credit's event did not name the charge; a kept refund applied by the credit deadlocked with
 * the payment's other events (500); a dispute's `created` resent under a new event id, after
 * another dispute's win had filled it, took its amount a second time.
 */
const { runs, seed } = modelSettings(60);
const MAX_DISPUTES = 3;

type Naming = "both" | "charge";
type Ending = "none" | "won" | "lost" | "warning_closed" | "reinstated" | "lost_then_reinstated";
type DisputeSpec = { cents: number; naming: Naming; ending: Ending; endNaming: Naming };
type PaymentSpec = {
  cents: number;
  piNamesCharge: boolean;
  sendPi: boolean;
  sendChargeSucceeded: boolean;
  refunds: { cumulative: number; naming: Naming }[];
  disputes: DisputeSpec[];
};

const naming = fc.constantFrom<Naming>("both", "charge");
const paymentSpec: fc.Arbitrary<PaymentSpec> = fc
  .record({
    cents: fc.constantFrom(500, 2500, 9999),
    piNamesCharge: fc.boolean(),
    sendPi: fc.constantFrom(true, true, true, false),
    sendChargeSucceeded: fc.boolean(),
    refundFractions: fc.array(fc.record({ f: fc.integer({ min: 1, max: 100 }), naming }), { maxLength: 3 }),
    disputes: fc.array(
      fc.record({
        f: fc.integer({ min: 1, max: 100 }),
        naming,
        ending: fc.constantFrom<Ending>("none", "won", "lost", "warning_closed", "reinstated", "lost_then_reinstated"),
        endNaming: naming,
      }),
      { maxLength: MAX_DISPUTES },
    ),
  })
  .map((r) => {
    const refunds = [...r.refundFractions]
      .map((x) => ({ cumulative: Math.max(1, Math.floor((r.cents * x.f) / 100)), naming: x.naming }))
      .sort((a, b) => a.cumulative - b.cumulative);
    return {
      cents: r.cents,
      // The charge must become known with its payment somehow (the documented limit otherwise).
      piNamesCharge: r.piNamesCharge || !r.sendChargeSucceeded,
      sendPi: r.sendPi,
      sendChargeSucceeded: r.sendChargeSucceeded,
      refunds,
      disputes: r.disputes.map((d) => ({
        cents: Math.max(1, Math.floor((r.cents * d.f) / 100)),
        naming: d.naming,
        ending: d.ending,
        endNaming: d.endNaming,
      })),
    };
  });

const scenario = fc.record({
  payments: fc.array(paymentSpec, { minLength: 1, maxLength: 3 }),
  // which org each payment belongs to
  owners: fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 3, maxLength: 3 }),
  shuffleSeed: fc.integer(),
  batch: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 30, maxLength: 30 }),
  dupes: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 40, maxLength: 40 }),
  // a copy sent again under a new event id (the processor's resend of the same object)
  fresh: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
});

function expectedReversed(p: PaymentSpec): number {
  if (!p.sendPi) return 0;
  const refunded = p.refunds.length ? Math.max(...p.refunds.map((r) => r.cumulative)) : 0;
  const disputed = p.disputes
    .filter((d) => d.ending === "none" || d.ending === "lost")
    .reduce((s, d) => s + d.cents, 0);
  return Math.min(p.cents, refunded + disputed);
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function buildEvents(app: PaymentsTestApp, p: PaymentSpec, customerId: string): ProcessorEventBody[] {
  const pi = processorId("pi");
  const ch = processorId("ch");
  const events: ProcessorEventBody[] = [];
  if (p.sendPi)
    events.push(
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: pi, customer: customerId, cents: p.cents, ...(p.piNamesCharge ? { charge: ch } : {}) }),
      ),
    );
  if (p.sendChargeSucceeded) {
    events.push(
      app.event("charge.succeeded", {
        ...charge({ id: ch, paymentIntent: pi, cents: p.cents, refundedCents: 0 }),
        customer: customerId,
      }),
    );
  }
  for (const r of p.refunds)
    events.push(
      app.event(
        "charge.refunded",
        charge({ id: ch, paymentIntent: r.naming === "both" ? pi : null, cents: p.cents, refundedCents: r.cumulative }),
      ),
    );
  for (const d of p.disputes) {
    const id = processorId("dp");
    events.push(
      app.event(
        "charge.dispute.created",
        dispute({ id, charge: ch, paymentIntent: d.naming === "both" ? pi : null, cents: d.cents }),
      ),
    );
    const ends =
      d.ending === "none"
        ? []
        : d.ending === "reinstated"
          ? ["funds_reinstated"]
          : d.ending === "lost_then_reinstated"
            ? ["lost", "funds_reinstated"]
            : [d.ending];
    for (const end of ends)
      events.push(
        app.event(
          end === "funds_reinstated" ? "charge.dispute.funds_reinstated" : "charge.dispute.closed",
          dispute({
            id,
            charge: ch,
            paymentIntent: d.endNaming === "both" ? pi : null,
            cents: d.cents,
            status: end === "funds_reinstated" ? "lost" : end,
          }),
        ),
      );
  }
  return events;
}

it.scoped({ dbOptions: { max: 12 } });

it("generated histories: each org ends with credited minus what was taken back, no 500", { timeout: 900_000 }, async ({
  app,
  db,
}) => {
  let run = 0;
  const fiveHundreds: string[] = [];
  await fc.assert(
    fc.asyncProperty(scenario, async (s) => {
      run++;
      const orgs = [await app.linkedOrg(`A${run}`), await app.linkedOrg(`B${run}`)];
      let all: ProcessorEventBody[] = [];
      const expected = [0, 0];
      s.payments.forEach((p, i) => {
        const owner = s.owners[i] ?? 0;
        const org = orgs[owner];
        if (!org) throw new Error("no org");
        all.push(...buildEvents(app, p, org.customerId));
        if (p.sendPi) expected[owner] = (expected[owner] ?? 0) + p.cents - expectedReversed(p);
      });
      // duplicates: the same event (same id) delivered again
      const withDupes: ProcessorEventBody[] = [];
      all.forEach((e, i) => {
        withDupes.push(e);
        for (let k = 1; k <= (s.dupes[i % s.dupes.length] ?? 0); k++)
          withDupes.push(s.fresh[(i + k) % s.fresh.length] ? { ...e, id: processorId("evt") } : e);
      });
      all = shuffle(withDupes, s.shuffleSeed);
      const trace: string[] = [];
      let i = 0;
      let b = 0;
      const failed: ProcessorEventBody[] = [];
      while (i < all.length) {
        const size = s.batch[b++ % s.batch.length] ?? 1;
        const batch = all.slice(i, i + size);
        i += size;
        const results = await Promise.all(batch.map((e) => app.deliver(e)));
        results.forEach((r, k) => {
          const e = batch[k] as ProcessorEventBody;
          trace.push(`${e.type}${batch.length > 1 ? `[batch${b}]` : ""}=${r.status}:${r.json?.outcome}`);
          if (r.status !== 200) {
            failed.push(e);
            fiveHundreds.push(`${e.type} ${r.status} ${r.text.slice(0, 200)}`);
          }
        });
      }
      // the processor retries what failed
      for (let attempt = 0; attempt < 5 && failed.length; attempt++) {
        const again = failed.splice(0);
        for (const e of again) {
          const r = await app.deliver(e);
          if (r.status !== 200) failed.push(e);
        }
      }
      const got = [await app.balanceNano(orgs[0]?.orgKey as string), await app.balanceNano(orgs[1]?.orgKey as string)];
      const want = expected.map((c) => BigInt(c) * 10_000_000n);
      if (got[0] !== want[0] || got[1] !== want[1]) {
        console.log(JSON.stringify({ s, got: got.map(String), want: want.map(String), trace }, null, 1));
      }
      expect(failed).toEqual([]);
      expect(got).toEqual(want);
      expect(fiveHundreds).toEqual([]);
    }),
    { numRuns: runs, seed, verbose: 1, endOnFailure: true },
  );
  await expectLedgerConsistent(db.sql);
});
