import { z } from "@hono/zod-openapi";
import { MAX_EXPORT_DAYS } from "../../../billing/exports/export-period.js";
import { formatUsd } from "../../../ledger/money.js";
import type { Cell } from "../../csv-export.js";

/** `start` and `end` of every export; parseExportPeriod checks them together. */
export const ExportPeriodQuery = {
  start: z.string().max(40).openapi({
    description: "Start of the period, inclusive: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp",
    example: "2026-01-01",
  }),
  end: z
    .string()
    .max(40)
    .openapi({
      description: `End of the period, exclusive (same forms); at most ${MAX_EXPORT_DAYS} days after start`,
      example: "2027-01-01",
    }),
};

/** A CSV attachment, for a route's `responses`. */
export function csvResponse(description: string) {
  return {
    description: `${description}. \`text/csv; charset=utf-8\`, \`Content-Disposition: attachment\`, streamed; amounts as exact decimal USD and integer nano-USD, never rounded`,
    content: { "text/csv": { schema: z.string().openapi({ format: "binary" }) } },
  } as const;
}

/** The two columns of an amount: exact decimal USD and integer nano-USD. */
export const usdCells = (nano: bigint): Cell[] => [formatUsd(nano), nano.toString()];

/** `2026-01-01`, or the whole timestamp when the instant is not a midnight UTC: for file names. */
export function fileDate(d: Date): string {
  const iso = d.toISOString();
  return iso.endsWith("T00:00:00.000Z") ? iso.slice(0, 10) : iso.replace(/[:.]/g, "-");
}
