import fc from "fast-check";
import { expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { modelSettings } from "../model/settings.js";
import { creditNote, issueInvoice } from "./invoices.js";

const CENT = 10_000_000n;
const REFUNDS = /^POST \/v1\/refunds$/;

/**
 * Card credit notes against refunds made at the processor's dashboard, with the processor failing
 * our refund calls (before or after making the refund) and its events held, reordered and sent
 * twice (generated from helper-81's fuzz, which found a dashboard refund applied short by a
 * pending credit-note refund that then failed). One $30 invoice paid from a $50 card top-up.
 *
 * Invariants, once every note is retried until answered and every event delivered:
 *  - what the org's credits lost is exactly what others (not our notes) refunded of the charge;
 *  - what our notes' refunds succeeded with is exactly what the processor refunded for them;
 *  - no note's refund is left pending; the ledger is consistent.
 */
type Step =
  | { kind: "note"; amount: "5" | "10" | "15"; fault: Fault }
  | { kind: "retry"; which: number; fault: Fault }
  | { kind: "dashboard"; cents: number }
  | { kind: "hold" }
  | { kind: "release"; order: "as_made" | "reverse"; copies: number };
type Fault = "none" | "unreachable" | "unreachable-after" | "5xx" | "5xx-after";

const fault = fc.constantFrom<Fault>("none", "unreachable", "unreachable-after", "5xx", "5xx-after");
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("note" as const), amount: fc.constantFrom("5", "10", "15"), fault }),
  },
  fc.record({ kind: fc.constant("retry" as const), which: fc.nat(9), fault }),
  fc.record({ kind: fc.constant("dashboard" as const), cents: fc.constantFrom(500, 1000, 2000, 3000) }),
  fc.record({ kind: fc.constant("hold" as const) }),
  fc.record({
    kind: fc.constant("release" as const),
    order: fc.constantFrom("as_made", "reverse"),
    copies: fc.integer({ min: 1, max: 2 }),
  }),
);

const { runs, seed, path } = modelSettings(20);

it(`card credit notes, dashboard refunds and faults in any order: credits lose exactly what others refunded (seed ${seed})`, {
  timeout: 600_000,
}, async ({ app, clock, db, processor }) => {
  let story = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 10 }), async (steps) => {
      story++;
      const org = await app.createOrg(`card notes ${story}`);
      const invoice = await issueInvoice(app, clock, org, { charge: "30" });
      const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "50.00" }));
      expect((await payOnPage(topup.json.url)).status).toBe(303);
      await processor.idle();
      const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
      const paymentId = t!.payment_id;
      const start = await app.balanceNano(org.orgKey);
      const notes: { key: string; amount: string }[] = [];
      const log: string[] = [];
      const send = async (note: { key: string; amount: string }, f: Fault) => {
        if (f !== "none")
          processor.fail({
            kind: f.startsWith("5xx") ? "5xx" : "unreachable",
            status: 502,
            match: REFUNDS,
            after: f.endsWith("after"),
          });
        const body = { lines: [{ description: "Correction", amount: note.amount }], reason: "r", refund: "card" };
        const res = await creditNote(app, invoice.id, body, note.key);
        processor.clearFaults();
        log.push(
          `${note.key} $${note.amount} (${f}) -> ${res.status} ${res.json?.card_refund?.status ?? res.json?.error?.code}`,
        );
        if (res.status >= 500)
          expect(res.json?.error?.code, `${res.text}\n${log.join("\n")}`).toBe("processor_unavailable");
      };
      const charge = () => [...processor.charges.values()].find((c) => c.payment_intent === paymentId)!;
      try {
        for (const [i, s] of steps.entries()) {
          if (s.kind === "note") {
            const note = { key: `note-${story}-${i}`, amount: s.amount };
            notes.push(note);
            await send(note, s.fault);
          } else if (s.kind === "retry" && notes.length > 0) {
            await send(notes[s.which % notes.length]!, s.fault);
          } else if (s.kind === "dashboard") {
            const cents = Math.min(s.cents, charge().amount - charge().amount_refunded);
            if (cents > 0) processor.refund(paymentId, cents);
            log.push(`dashboard refund ${cents}`);
          } else if (s.kind === "hold") {
            processor.setWebhookMode("hold");
          } else if (s.kind === "release") {
            await processor.release({ order: s.order, copies: s.copies });
            processor.setWebhookMode("auto");
          }
          await processor.idle();
        }
        // Every note sent again until the processor answered it, every held event delivered.
        for (const note of notes) await send(note, "none");
        processor.setWebhookMode("auto");
        await processor.release({ order: "reverse" });
        await processor.idle();

        const ours = [...processor.refunds.values()].filter((r) => r.payment_intent === paymentId);
        const oursCents = ours.reduce((sum, r) => sum + r.amount, 0);
        const othersCents = BigInt(charge().amount_refunded - oursCents);
        const [succeeded] = await db.sql<{ cents: string; pending: number }[]>`
          select coalesce(sum(amount_minor) filter (where status = 'succeeded'), 0)::text as cents,
                 count(*) filter (where status = 'pending')::int as pending
          from credit_note_refunds where org_id = ${org.id}`;
        expect(
          {
            creditsLostCents: (start - (await app.balanceNano(org.orgKey))) / CENT,
            notesSucceededCents: BigInt(succeeded!.cents),
            pending: succeeded!.pending,
          },
          log.join("\n"),
        ).toEqual({ creditsLostCents: othersCents, notesSucceededCents: BigInt(oursCents), pending: 0 });
      } finally {
        processor.clearFaults();
        processor.setWebhookMode("auto");
        await processor.release();
        await processor.idle();
      }
    }),
    { numRuns: runs, seed, path },
  );
  await expectLedgerConsistent(db.sql);
});
