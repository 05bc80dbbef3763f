import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  costNanoUsd,
  divideHalfEven,
  formatUsd,
  formatUsdNumber,
  MoneyError,
  parseUsd,
} from "../../src/ledger/money.js";

const nano = fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n });

describe("USD parsing and formatting", () => {
  it("round-trips every nano-USD amount exactly", () => {
    fc.assert(fc.property(nano, (n) => parseUsd(formatUsd(n)) === n));
  });

  it("formats with the fewest digits", () => {
    expect(formatUsd(142_870_000_000n)).toBe("142.87");
    expect(formatUsd(1n)).toBe("0.000000001");
    expect(formatUsd(-1_500_000_000n)).toBe("-1.5");
    expect(formatUsd(0n)).toBe("0");
  });

  it("gives the seed's JSON numbers for two-decimal amounts", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 11n }), (cents) => {
        const n = cents * 10_000_000n;
        const text = JSON.stringify(formatUsdNumber(n));
        return parseUsd(text) === n;
      }),
    );
    expect(JSON.stringify({ balance: formatUsdNumber(parseUsd("142.87")) })).toBe('{"balance":142.87}');
  });

  // More than nine decimals, junk, exponents and absurd sizes.
  it.each(["1.0000000001", "abc", "1e3", "", "1.", ".5", "--1", "1,00", "NaN", "Infinity", "99999999999999999999"])(
    "refuses %j",
    (bad) => {
      expect(() => parseUsd(bad)).toThrow(MoneyError);
    },
  );
});

describe("half-even division", () => {
  it("rounds ties to the even neighbour, both signs", () => {
    expect(divideHalfEven(5n, 2n)).toBe(2n);
    expect(divideHalfEven(7n, 2n)).toBe(4n);
    expect(divideHalfEven(-5n, 2n)).toBe(-2n);
    expect(divideHalfEven(-7n, 2n)).toBe(-4n);
    expect(divideHalfEven(10n, 4n)).toBe(2n);
    expect(divideHalfEven(11n, 4n)).toBe(3n);
  });

  it("is always within half a unit of the exact quotient", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        (a, b) => {
          const q = divideHalfEven(a, b);
          const err = q * b - a; // (q - a/b) * b
          const abs = err < 0n ? -err : err;
          return abs * 2n <= b;
        },
      ),
    );
  });

  it("never drifts: pricing N units at once equals the exact product rounded once", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 9n }),
        fc.integer({ min: 0, max: 12 }),
        fc.bigInt({ min: 0n, max: 10n ** 8n }),
        (q, scale, units) => {
          const rate =
            `${units / 10n ** BigInt(scale)}.${(units % 10n ** BigInt(scale)).toString().padStart(scale, "0")}`.replace(
              /\.$/,
              "",
            );
          const cost = costNanoUsd(q, rate);
          const exactTimes = q * units * 1_000_000_000n; // cost × 10^scale, exactly
          const diff = cost * 10n ** BigInt(scale) - exactTimes;
          return (diff < 0n ? -diff : diff) * 2n <= 10n ** BigInt(scale);
        },
      ),
    );
  });

  it("prices real catalog rates exactly", () => {
    expect(costNanoUsd(1_000_000n, "0.0000025")).toBe(2_500_000_000n); // 1M tokens at $2.50/M
    expect(costNanoUsd(3n, "0.0000000005")).toBe(2n); // 1.5 nano → 2 (tie to even)
    expect(costNanoUsd(5n, "0.0000000005")).toBe(2n); // 2.5 nano → 2 (tie to even)
    expect(costNanoUsd(7n, "0.0000000005")).toBe(4n); // 3.5 nano → 4
  });
});
