import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Model, NANO_PER_CENT } from "./model.js";
import { modelSettings } from "./settings.js";

/**
 * The rules themselves (test/model/model.ts, which engine.test.ts holds the engine to), with no
 * service: issue 11 asks for "one outcome for one sequence, whatever the sweep's timing". Two
 * copies of the model get the same requests; one runs the hold sweep and the grant-expiry
 * worker after every request, the other only at the end. Every answer and what each org is
 * shown (balance, credits, held) must be the same at every step.
 */
type Op =
  | { kind: "grant"; org: number; cents: number; expiresInS: number | null }
  | { kind: "authorize"; org: number; cents: number; ttl: number }
  | { kind: "settle"; org: number; pick: number; cents: number }
  | { kind: "usage"; org: number; cents: number }
  | { kind: "advance"; seconds: number }
  | { kind: "topup"; org: number; cents: number }
  | { kind: "refund"; pick: number; cents: number };

const org = fc.integer({ min: 0, max: 1 });
const cents = fc.integer({ min: 1, max: 150 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("grant" as const), org, cents, expiresInS: fc.option(fc.integer({ min: 1, max: 8 })) }),
  fc.record({ kind: fc.constant("authorize" as const), org, cents, ttl: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("settle" as const), org, pick: fc.nat(20), cents }),
  fc.record({ kind: fc.constant("usage" as const), org, cents }),
  fc.record({ kind: fc.constant("advance" as const), seconds: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("topup" as const), org, cents }),
  fc.record({ kind: fc.constant("refund" as const), pick: fc.nat(20), cents }),
);

/** Applies one request to a model; returns its answer, comparable across the two copies. */
function apply(m: Model, o: Op, n: number): string {
  switch (o.kind) {
    case "grant": {
      const expiresAt = o.expiresInS === null ? null : m.now + o.expiresInS * 1000 + n; // a distinct instant per grant
      m.grant(o.org, `g${n}`, BigInt(o.cents) * NANO_PER_CENT, expiresAt, "").id = `g${n}`;
      return "granted";
    }
    case "authorize": {
      const out = m.authorize(o.org, BigInt(o.cents) * NANO_PER_CENT, o.ttl, null, "");
      if (out.kind === "held") out.hold.id = `h${n}`;
      return out.kind;
    }
    case "settle": {
      const own = m.holds.filter((h) => h.org === o.org);
      const hold = own[o.pick % Math.max(own.length, 1)];
      if (!hold) return "no hold";
      const out = m.recordUsage(o.org, `u${n}`, "", BigInt(o.cents) * NANO_PER_CENT, hold.id, m.now);
      return out.kind === "recorded" ? `${out.holdOutcome}` : out.kind;
    }
    case "usage":
      return m.recordUsage(o.org, `u${n}`, "", BigInt(o.cents) * NANO_PER_CENT, undefined, m.now).kind;
    case "advance":
      m.advance(o.seconds * 1000);
      return "advanced";
    case "topup":
      m.cardTopup(o.org, `pi${n}`, `ch${n}`, BigInt(o.cents));
      return "credited";
    case "refund": {
      const p = m.payments[o.pick % Math.max(m.payments.length, 1)];
      return p ? m.cardRefund(p, p.refundedCents + BigInt(o.cents)) : "no payment";
    }
  }
}

const shown = (m: Model) =>
  [0, 1]
    .map((i) => m.balance(i))
    .map((b) => `${b.balance}/${b.credits}/${b.held}`)
    .join(" ");

const { runs, seed } = modelSettings(2_000);

describe("the money rules: the workers' timing changes nothing", () => {
  it("answers and balances agree whether the sweeps run after every request or only at the end", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const start = Date.UTC(2026, 0, 2);
        const eager = new Model(start, 2);
        const lazy = new Model(start, 2);
        ops.forEach((o, n) => {
          const answer = apply(eager, o, n);
          eager.sweepHolds();
          eager.postGrantExpiries();
          expect(apply(lazy, o, n), `answer to ${JSON.stringify(o)}`).toBe(answer);
          expect(shown(lazy), `balance/credits/held of each org after ${JSON.stringify(o)}`).toBe(shown(eager));
        });
        for (const m of [eager, lazy]) {
          m.advance(10_000); // every hold and grant past its time
          m.sweepHolds();
          m.postGrantExpiries();
        }
        expect(shown(lazy), "at the end").toBe(shown(eager));
      }),
      { numRuns: runs * 10, seed },
    );
  });
});
