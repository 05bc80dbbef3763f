import { stringify } from "csv-stringify/sync";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { csvRecord } from "../../src/http/csv-record.js";
import { parseCsv } from "../support/csv.js";

/**
 * The exports write CSV with csvRecord (src/http/csv-record.ts), a few lines in place of
 * csv-stringify for speed; csv-stringify with its defaults stays the reference it must match.
 */
const Text = fc.oneof(
  fc.string(),
  fc.string({ unit: fc.constantFrom(",", '"', "\n", "\r", "a", " ", "'", "=", "é", "😀") }),
);
const Cell = fc.option(Text, { nil: null });

describe("csvRecord", () => {
  it("writes what csv-stringify writes, for any cells (property)", () => {
    fc.assert(
      fc.property(fc.array(Cell, { minLength: 1, maxLength: 12 }), (cells) => {
        expect(csvRecord(cells)).toBe(stringify([cells]));
      }),
      { numRuns: 2000 },
    );
  });

  it("reads back as the same cells (null as empty), however they are quoted", () => {
    fc.assert(
      fc.property(fc.array(Cell, { minLength: 2, maxLength: 12 }), (cells) => {
        expect(parseCsv(csvRecord(cells))).toEqual([cells.map((c) => c ?? "")]);
      }),
      { numRuns: 2000 },
    );
  });

  it("quotes only what needs quotes", () => {
    expect(csvRecord(["a", null, "", "b c", "x,y", 'say "hi"', "l1\nl2", "cr\r"])).toBe(
      'a,,,b c,"x,y","say ""hi""","l1\nl2","cr\r"\n',
    );
  });
});
