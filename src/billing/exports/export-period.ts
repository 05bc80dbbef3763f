import { BillingError } from "../../errors.js";

/** The longest period one export may cover: a year, leap day included. Longer periods are exported in parts. */
export const MAX_EXPORT_DAYS = 366;
const DAY_MS = 86_400_000;

/** An export's period: [start, end), UTC. */
export type ExportPeriod = { start: Date; end: Date };

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
// Years 1970-9998: what a billing period can name (see PERIOD_YEARS), and far inside what PostgreSQL holds.
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 0, 1);

/** `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp with its offset. */
function parseInstant(text: string, param: "start" | "end"): Date {
  const ms = DATE.test(text) || TIMESTAMP.test(text) ? Date.parse(DATE.test(text) ? `${text}T00:00:00Z` : text) : NaN;
  // Date.parse rolls 2026-02-30 over to March: a date must read back as itself.
  const rolled = DATE.test(text) && !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) !== text;
  if (Number.isNaN(ms) || rolled)
    throw new BillingError("invalid_request", `${param} must be a date (YYYY-MM-DD, UTC) or an RFC 3339 timestamp`, {
      details: { param },
    });
  if (ms < EARLIEST || ms > LATEST)
    throw new BillingError("invalid_request", `${param} must be between 1970-01-01 and 9999-01-01`, {
      details: { param },
    });
  return new Date(ms);
}

/**
 * The period of an export from its `start` and `end` (exclusive): both required, start before
 * end, at most MAX_EXPORT_DAYS apart. Every refusal is a 400 naming the parameter at fault.
 */
export function parseExportPeriod(input: { start: string; end: string }): ExportPeriod {
  const start = parseInstant(input.start, "start");
  const end = parseInstant(input.end, "end");
  if (end.getTime() <= start.getTime())
    throw new BillingError("invalid_request", "end must be after start (the period is [start, end))", {
      details: { param: "end" },
    });
  if (end.getTime() - start.getTime() > MAX_EXPORT_DAYS * DAY_MS)
    throw new BillingError(
      "invalid_request",
      `the period is longer than ${MAX_EXPORT_DAYS} days; export a longer history in parts`,
      { details: { param: "end" } },
    );
  return { start, end };
}
