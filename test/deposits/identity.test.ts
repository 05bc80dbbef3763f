import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { identityKey, withOrdinals, type TransferContent } from "../../src/billing/deposits/identity.js";

// Few distinct values, so that identical transfers in one transaction are common.
const transfer = fc.record({
  tokenAddress: fc.constantFrom("0xaa", "0xAB"),
  from: fc.constantFrom("0x01", "0x02"),
  to: fc.constantFrom("0xa1", "0xb2", "0xC3"),
  amount: fc.constantFrom(5n, 7n, 10n ** 18n),
});

const placed = (ts: TransferContent[], firstIndex: number) => ts.map((t, i) => ({ ...t, logIndex: firstIndex + i }));

describe("a deposit's identity within its transaction", () => {
  it("is unique within the transaction, and the same wherever the transaction is mined (any log index offset)", () => {
    fc.assert(
      fc.property(fc.array(transfer, { maxLength: 12 }), fc.nat(500), fc.nat(500), (ts, first, again) => {
        const a = withOrdinals(placed(ts, first)).map(identityKey);
        const b = withOrdinals(placed(ts, again)).map(identityKey);
        expect(new Set(a).size).toBe(ts.length);
        expect(b).toEqual(a);
      }),
    );
  });

  it("does not depend on the order the logs are listed in, only on their order in the block", () => {
    fc.assert(
      fc.property(fc.array(transfer, { maxLength: 12 }), fc.nat(100), fc.integer(), (ts, first, seed) => {
        const logs = placed(ts, first);
        const shuffled = [...logs].sort(
          (x, y) => ((x.logIndex * 7919 + seed) % 13) - ((y.logIndex * 7919 + seed) % 13),
        );
        const key = (l: { logIndex: number } & TransferContent & { ordinal: number }) =>
          `${l.logIndex}=${identityKey(l)}`;
        expect(withOrdinals(shuffled).map(key).sort()).toEqual(withOrdinals(logs).map(key).sort());
      }),
    );
  });

  it("numbers identical transfers 0, 1, 2… in log order; differing in case only is the same content", () => {
    const ids = withOrdinals(
      placed(
        [
          { tokenAddress: "0xAA", from: "0x01", to: "0xB2", amount: 5n },
          { tokenAddress: "0xaa", from: "0x01", to: "0xb2", amount: 5n },
          { tokenAddress: "0xaa", from: "0x01", to: "0xb2", amount: 6n },
        ],
        3,
      ),
    );
    expect(ids.map((t) => t.ordinal)).toEqual([0, 1, 0]);
  });
});
