/**
 * Reads CSV text (RFC 4180: quoted cells, doubled quotes, line breaks inside quotes) into rows of
 * cells, and those into records by the header line: what a finance tool would read from an export.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += ch;
  }
  if (quoted) throw new Error("CSV ends inside a quoted cell");
  if (cell !== "" || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** Rows as records keyed by the header line; every row must have the header's width. */
export function csvRecords(text: string): { columns: string[]; records: Record<string, string>[] } {
  const [columns = [], ...rows] = parseCsv(text);
  const records = rows.map((cells, i) => {
    if (cells.length !== columns.length)
      throw new Error(`row ${i + 2} has ${cells.length} cells, the header ${columns.length}`);
    return Object.fromEntries(columns.map((c, j) => [c, cells[j] ?? ""]));
  });
  return { columns, records };
}
