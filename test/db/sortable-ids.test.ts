import fc from "fast-check";
import { describe, expect } from "vitest";
import { newId, timeBase62 } from "../../src/ids.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * Ids (src/ids.ts): the kind, then 8 base62 characters of the time minted and 12 random ones. Ids
 * minted later sort after earlier ones, in JavaScript and in PostgreSQL's order for the text
 * columns that hold them, so rows keyed by id go in at the right edge of their indexes.
 */
const MAX_MS = 62 ** 8 - 1;

describe("ids", () => {
  it("keep their shape: the kind, an underscore, 20 base62 characters", () => {
    for (const kind of ["use", "hold", "txn", "org", "pm"] as const)
      expect(newId(kind)).toMatch(new RegExp(`^${kind}_[0-9A-Za-z]{20}$`));
  });

  it("write the time most significant first", () => {
    expect(timeBase62(0)).toBe("00000000");
    expect(timeBase62(61)).toBe("0000000z");
    expect(timeBase62(62)).toBe("00000010");
    expect(timeBase62(MAX_MS)).toBe("zzzzzzzz");
    expect(timeBase62(Date.parse("2026-12-03T00:00:00Z"))).toHaveLength(8);
  });

  it("sort by the time written, whatever the two times", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MS }), fc.integer({ min: 0, max: MAX_MS }), (a, b) => {
        const [x, y] = [timeBase62(a), timeBase62(b)];
        expect(Math.sign(x < y ? -1 : x > y ? 1 : 0)).toBe(Math.sign(a - b));
      }),
      { numRuns: 2000 },
    );
  });

  it("minted in later milliseconds sort later in PostgreSQL, and none repeats", async ({ db }) => {
    // Many ids in each of 20 milliseconds or more; their order within one millisecond is random,
    // so the order is checked on the first id of each.
    const minted: string[] = [];
    const start = Date.now();
    while (Date.now() - start < 20) minted.push(newId("use"));
    const firstPerMs = minted.filter((id, i) => i === 0 || id.slice(4, 12) !== minted[i - 1]?.slice(4, 12));
    expect(firstPerMs.length).toBeGreaterThanOrEqual(10);
    const [row] = await db.sql<{ ordered: string[]; distinct: number }[]>`
      select array_agg(id order by id) as ordered, count(distinct id)::int as distinct
      from unnest(${firstPerMs}::text[]) id`;
    expect(row?.ordered).toEqual(firstPerMs);
    const [all] = await db.sql<
      { distinct: number }[]
    >`select count(distinct id)::int as distinct from unnest(${minted}::text[]) id`;
    expect(all?.distinct).toBe(minted.length);
  });
});
