import fc from "fast-check";
import { describe, expect } from "vitest";
import { newId, timeBase36 } from "../../src/ids.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * Ids (src/ids.ts): the kind, then 9 base-36 characters of the time minted and 11 random base62
 * ones. Ids minted later sort after earlier ones, in JavaScript and in PostgreSQL's order for the
 * text columns that hold them, whatever their collation, so rows keyed by id go in at the right
 * edge of their indexes.
 */
const MAX_MS = 36 ** 9 - 1;

describe("ids", () => {
  it("keep their shape: the kind, an underscore, 20 base62 characters", () => {
    for (const kind of ["use", "hold", "txn", "org", "pm"] as const)
      expect(newId(kind)).toMatch(new RegExp(`^${kind}_[0-9A-Za-z]{20}$`));
  });

  it("write the time most significant first", () => {
    expect(timeBase36(0)).toBe("000000000");
    expect(timeBase36(35)).toBe("00000000Z");
    expect(timeBase36(36)).toBe("000000010");
    expect(timeBase36(MAX_MS)).toBe("ZZZZZZZZZ");
    expect(timeBase36(Date.parse("2026-12-03T00:00:00Z"))).toBe("0MX6SG000");
  });

  it("sort by the time written, whatever the two times", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MS }), fc.integer({ min: 0, max: MAX_MS }), (a, b) => {
        const [x, y] = [timeBase36(a), timeBase36(b)];
        expect(Math.sign(x < y ? -1 : x > y ? 1 : 0)).toBe(Math.sign(a - b));
      }),
      { numRuns: 2000 },
    );
  });

  it("minted in later milliseconds sort later in PostgreSQL, and none repeats", async ({ db }) => {
    // Ids minted until 20 milliseconds have been seen (a busy machine may skip some: they are
    // counted, not timed); their order within one millisecond is random, so the order is checked
    // on the first id of each.
    const minted: string[] = [];
    const firstPerMs: string[] = [];
    while (firstPerMs.length < 20) {
      const id = newId("use");
      if (id.slice(4, 13) !== minted.at(-1)?.slice(4, 13)) firstPerMs.push(id);
      minted.push(id);
    }
    // In the database's own collation, in byte order, and in ICU's English one, which sorts `a`
    // before `B` (a time written in mixed case would be out of order there).
    const [row] = await db.sql<{ own: string[]; bytes: string[]; english: string[] }[]>`
      select array_agg(id order by id) as own, array_agg(id order by id collate "C") as bytes,
             array_agg(id order by id collate "en-US-x-icu") as english
      from unnest(${firstPerMs}::text[]) id`;
    expect(row?.own).toEqual(firstPerMs);
    expect(row?.bytes).toEqual(firstPerMs);
    expect(row?.english).toEqual(firstPerMs);
    const [all] = await db.sql<
      { distinct: number }[]
    >`select count(distinct id)::int as distinct from unnest(${minted}::text[]) id`;
    expect(all?.distinct).toBe(minted.length);
  });
});
