import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuthorizeRequest } from "../../src/http/routes/gateway/authorize.js";
import {
  AUTHORIZE_RULES,
  quickAuthorizeRequest,
  quickUsageEvent,
  USAGE_RULES,
} from "../../src/http/routes/gateway/quick-parse.js";
import { UsageEvent } from "../../src/http/routes/gateway/report-usage.js";

/**
 * The batch routes' quick check (src/http/routes/gateway/quick-parse.ts) against the zod schemas
 * it stands in for, on generated items: plain ones, and ones with a field bent out of the plain
 * form or out of range. Whenever the quick check answers, zod accepts the item and parses it to
 * the same value; the plain items the gateway sends are answered by the quick check (else it
 * would be dead code and zod would do all the work again).
 */

const plainText = (min: number, max: number) =>
  fc.string({
    minLength: min,
    maxLength: max,
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  });
/** Text near the rules' edges: empty, too long, control characters, non-ASCII, lone and paired surrogates. */
const oddText = fc.oneof(
  fc.constantFrom("", "\u0000", "a\u001fb", "\u007f", "é", "\ud800", "a\udc00", "\ud83d\ude00", " ", "x".repeat(256)),
  fc.string({ maxLength: 90, unit: "grapheme" }),
  fc.string({ maxLength: 90, unit: "binary" }),
  fc.integer({ min: 60, max: 90 }).map((n) => "a".repeat(n)),
);
const quantity = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 1_000_000_000_000 }) },
  fc.constantFrom(-0, -1, 0.5, 1e12 + 1, Number.MAX_SAFE_INTEGER, 2 ** 53, Number.NaN, Infinity, "12", "1e3", "", null),
  fc.integer({ min: 0, max: 2 ** 53 }),
  fc.stringMatching(/^\d{1,20}$/),
);
const meterName = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_]{0,40}$/) },
  fc.constantFrom("Input", "_x", "a-b", "", "a".repeat(42), "__proto__", "constructor", "toString"),
);
const plainQuantities = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,40}$/), fc.nat(1_000_000), {
  minKeys: 1,
  maxKeys: 10,
});
const quantities = fc.oneof(
  { weight: 6, arbitrary: plainQuantities },
  fc.dictionary(meterName, quantity, { minKeys: 0, maxKeys: 12 }),
  fc.constantFrom(null, [], "x", 5, { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10, k: 11 }),
);
const timestamp = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true })
      .map((d) => d.toISOString()),
  },
  fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 24 }),
      fc.constantFrom("", ".5", ".123456789", ".1234567890"),
      fc.constantFrom("Z", "z", "+00:00", "-01:00", "+14:00", "+24:00", "-23:59", "+0100", ""),
    )
    .map(([y, mo, d, h, frac, off]) => {
      const two = (n: number) => String(n).padStart(2, "0");
      return `${String(y).padStart(4, "0")}-${two(mo)}-${two(d)}T${two(h)}:30:59${frac}${off}`;
    }),
  fc.constantFrom(
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
  ),
);
const project = fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/), oddText);

/** An item: each field absent, plain, or bent; sometimes an extra field; sometimes not an object at all. */
function items(fields: Record<string, fc.Arbitrary<unknown>>, required: string[]) {
  const record = fc.record(
    Object.fromEntries(
      Object.entries(fields).map(([key, plain]) => [
        key,
        required.includes(key)
          ? fc.oneof({ weight: 30, arbitrary: plain }, oddText, fc.constant(undefined))
          : fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 8, arbitrary: plain }, oddText),
      ]),
    ),
  );
  return fc
    .oneof(
      { weight: 12, arbitrary: record.map(dropUndefined) },
      record.map((r) => ({ ...dropUndefined(r), extra: 1 })),
      fc.constantFrom(null, [], "x", 1),
    )
    .map(asReceived);
}

/** As the route receives an item: out of JSON.parse (so NaN is null, -0 is 0, objects are plain). */
function asReceived(item: unknown): unknown {
  return JSON.parse(JSON.stringify(item));
}

function dropUndefined(r: Record<string, unknown>) {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
}

const authorizeFields = {
  org_id: plainText(1, 64),
  product: plainText(1, 40),
  model: plainText(1, 80),
  estimate: quantities,
  idempotency_key: plainText(1, 255),
  ttl_seconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.constantFrom(0, 86_401, 1.5, "60", -1)),
  api_key_id: plainText(1, 64),
  project,
};
const usageFields = {
  idempotency_key: plainText(1, 255),
  org_id: plainText(1, 64),
  timestamp,
  product: plainText(1, 40),
  model: plainText(1, 80),
  quantities,
  hold_id: plainText(1, 64),
  api_key_id: plainText(1, 64),
  project,
};

describe("the batch routes' quick check answers only what zod would", () => {
  const cases = [
    {
      name: "authorization",
      quick: quickAuthorizeRequest,
      schema: AuthorizeRequest,
      arbitrary: items(authorizeFields, ["org_id", "product", "estimate"]),
      plain: fc
        .record(
          { org_id: plainText(1, 64), product: plainText(1, 40), estimate: plainQuantities, model: plainText(1, 80) },
          { requiredKeys: ["org_id", "product", "estimate"] },
        )
        .map(asReceived),
    },
    {
      name: "usage event",
      quick: quickUsageEvent,
      schema: UsageEvent,
      arbitrary: items(usageFields, ["idempotency_key", "org_id", "timestamp", "product", "quantities"]),
      plain: fc
        .record(
          {
            idempotency_key: plainText(1, 255),
            org_id: plainText(1, 64),
            timestamp: fc
              .date({
                min: new Date("2020-01-01T00:00:00Z"),
                max: new Date("2030-01-28T00:00:00Z"),
                noInvalidDate: true,
              })
              .filter((d) => d.getUTCDate() <= 28)
              .map((d) => d.toISOString()),
            product: plainText(1, 40),
            quantities: plainQuantities,
            hold_id: plainText(1, 64),
          },
          { requiredKeys: ["idempotency_key", "org_id", "timestamp", "product", "quantities"] },
        )
        .map(asReceived),
    },
  ] as const;

  for (const c of cases) {
    it(`${c.name}: when the quick check answers, zod accepts the same item with the same value`, () => {
      let answered = 0;
      let refused = 0;
      fc.assert(
        fc.property(c.arbitrary, (item) => {
          const quick = c.quick(item);
          const parsed = c.schema.safeParse(item);
          if (!parsed.success) refused++;
          if (quick === undefined) return;
          answered++;
          expect(parsed.success, JSON.stringify(item)).toBe(true);
          expect(quick).toStrictEqual(parsed.data);
        }),
        { numRuns: 3000 },
      );
      // Both sides of the property were reached: items the quick check answered, items zod refused.
      expect({ answered: answered > 300, refused: refused > 300 }).toEqual({ answered: true, refused: true });
    });

    it(`${c.name}: the plain shape the gateway sends is answered by the quick check`, () => {
      fc.assert(
        fc.property(c.plain, (item) => {
          expect(c.quick(item)).toStrictEqual(c.schema.parse(item));
        }),
        { numRuns: 500 },
      );
    });
  }

  it("knows the same fields as the schemas (a field added to or dropped from one is caught here)", () => {
    expect(Object.keys(AUTHORIZE_RULES).sort()).toEqual(Object.keys(AuthorizeRequest.shape).sort());
    expect(Object.keys(USAGE_RULES).sort()).toEqual(Object.keys(UsageEvent.shape).sort());
  });

  it("leaves to zod what it cannot settle by hand: digit strings, days 29-31, non-ASCII text", () => {
    const event = {
      idempotency_key: "k",
      org_id: "org_1",
      timestamp: "2026-01-15T00:00:00Z",
      product: "llm",
      quantities: { input_tokens: 5 },
    };
    expect(quickUsageEvent(event)).toStrictEqual(UsageEvent.parse(event));
    for (const bent of [
      { quantities: { input_tokens: "5" } },
      { timestamp: "2024-02-29T00:00:00Z" },
      { model: "zen-pró" },
      { quantities: {} },
    ]) {
      expect(quickUsageEvent({ ...event, ...bent })).toBeUndefined();
    }
  });
});
