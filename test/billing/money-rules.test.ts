import fc from "fast-check";
import { describe, expect } from "vitest";
import { lowBalanceCrossed, settleCharges, shownBalance, spendable } from "../../src/billing/money-rules.js";
import { dbTest as it } from "../support/fixtures.js";

/** Amounts well inside bigint (PostgreSQL refuses an overflow; JS bigint has none). */
const nano = fc.oneof(fc.bigInt({ min: -3n, max: 3n }), fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }));
const nonNegative = fc.oneof(fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: 10n ** 18n }));
const max = (a: bigint, b: bigint) => (a > b ? a : b);

describe("money rules (src/billing/money-rules.ts)", () => {
  it("spendable: the credits less what expired grants take; more taken, less to spend", () => {
    fc.assert(
      fc.property(nano, nonNegative, nonNegative, (credits, taken, more) => {
        expect(spendable(credits, 0n)).toBe(credits);
        expect(spendable(credits, taken + more) <= spendable(credits, taken)).toBe(true);
        expect(credits - spendable(credits, taken)).toBe(taken);
      }),
    );
  });

  it("lowBalanceCrossed: only a drop from at or above the threshold to below it", () => {
    fc.assert(
      fc.property(nano, nano, nano, (before, after, threshold) => {
        const crossed = lowBalanceCrossed(before, after, threshold);
        if (crossed) expect(after < before).toBe(true);
        expect(lowBalanceCrossed(after, after, threshold)).toBe(false);
        expect(crossed).toBe(before >= threshold && after < threshold);
      }),
    );
  });

  it("shownBalance: lapsed holds move from held to credits, expired grants leave; the total moves only by the grants", () => {
    fc.assert(
      fc.property(nano, nonNegative, nonNegative, nonNegative, (credits, held, lapsed, expiry) => {
        fc.pre(lapsed <= held);
        const shown = shownBalance({ credits, held, lapsedHolds: lapsed, pendingExpiry: expiry });
        expect(shown.balance).toBe(shown.credits + shown.held);
        expect(shown.balance).toBe(credits + held - expiry);
        expect(shown.held).toBe(held - lapsed);
        expect(shown.held >= 0n).toBe(true);
        expect(shown.credits).toBe(spendable(credits, expiry) + lapsed);
      }),
    );
  });

  it("settleCharges: charges paid from credits as far as they go, the rest due; a net credit goes in whole", () => {
    fc.assert(
      fc.property(nonNegative, nano, nano, (usage, charges, available) => {
        const s = settleCharges({ usage, charges, available });
        expect(s.settled + s.amountDue).toBe(charges);
        expect(s.subtotal).toBe(usage + charges);
        expect(s.creditsApplied).toBe(max(0n, usage + s.settled));
        if (charges > 0n) {
          expect(s.settled >= 0n && s.settled <= charges).toBe(true);
          expect(s.settled <= max(available, 0n)).toBe(true);
          // Nothing left due while credits could have paid it.
          if (s.amountDue > 0n) expect(s.settled).toBe(max(available, 0n));
        } else {
          expect(s.settled).toBe(charges);
          expect(s.amountDue).toBe(0n);
        }
      }),
    );
  });

  it("the TypeScript rules agree with their SQL twins (money_rules.sql) on generated amounts", async ({ db }) => {
    const cases = fc.array(fc.tuple(nano, nano, nano), { minLength: 1, maxLength: 50 });
    await fc.assert(
      fc.asyncProperty(cases, async (rows) => {
        const col = (k: 0 | 1 | 2) => rows.map((r) => r[k].toString());
        const answers = await db.appSql<{ spendable: bigint; crossed: boolean }[]>`
          select spendable_credits(a, b) as spendable, low_balance_crossed(a, b, c) as crossed
          from unnest(${col(0)}::bigint[], ${col(1)}::bigint[], ${col(2)}::bigint[]) with ordinality x(a, b, c, n)
          order by n`;
        expect(answers).toEqual(
          rows.map(([a, b, c]) => ({ spendable: spendable(a, b), crossed: lowBalanceCrossed(a, b, c) })),
        );
      }),
      { numRuns: 40 },
    );
  });
});
