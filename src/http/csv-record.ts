/** A cell: text as is, null as an empty cell. */
export type Cell = string | null;

// A cell holding any of these must be quoted (RFC 4180: delimiter, quote, line breaks).
const NEEDS_QUOTES = /[",\n\r]/;
const QUOTE = /"/g;

/**
 * One CSV record, its line break included: cells joined by commas, a cell holding a comma, a
 * quote or a line break (\n or \r) quoted with its quotes doubled, null and "" as an empty cell.
 * Exactly what csv-stringify writes with its defaults (test/exports/csv-record.test.ts checks
 * both on any cells), without its per-record option handling and allocations: an export writes
 * a million records, and this runs once per record.
 */
export function csvRecord(cells: readonly Cell[]): string {
  let line = "";
  for (let i = 0; i < cells.length; i++) {
    const cell = cells[i];
    if (i > 0) line += ",";
    if (cell === null || cell === undefined || cell === "") continue;
    line += NEEDS_QUOTES.test(cell) ? `"${cell.replace(QUOTE, '""')}"` : cell;
  }
  return `${line}\n`;
}
