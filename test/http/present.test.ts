import { describe, expect, it } from "vitest";
import { formatUsd, formatUsdNumber } from "../../src/ledger/money.js";
import { usd, usdFields } from "../../src/http/present.js";

describe("usd presenter", () => {
  it.for([0n, 1n, 142_870_000_000n, -5_000_000_000n, 123_456_789_012_345n])("%s nano-USD", (nano) => {
    expect(usd(nano)).toEqual({ number: formatUsdNumber(nano), exact: formatUsd(nano), nano: nano.toString() });
  });

  it("usdFields serializes as the routes did by hand, keys in the same order", () => {
    const nano = 142_870_000_001n;
    const byHand = { amount: formatUsdNumber(nano), amount_usd: formatUsd(nano), amount_nano_usd: nano.toString() };
    expect(JSON.stringify({ id: "x", ...usdFields("amount", nano), z: 1 })).toBe(
      JSON.stringify({ id: "x", ...byHand, z: 1 }),
    );
  });
});
