import { BillingError } from "../errors.js";

/**
 * A cursor over rows listed newest first by (created_at, id): the last row's time to the
 * microsecond (as PostgreSQL keeps it; a JavaScript Date would lose the microseconds) and its id.
 * Opaque to clients. SQL selects the time as TIME_CURSOR_SQL to make one.
 */
export const TIME_CURSOR_SQL = `to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export function encodeTimeCursor(ts: string, id: string): string {
  return Buffer.from(`t:${ts}|${id}`).toString("base64url");
}

/** Year 0001: PostgreSQL refuses year 0000 (22008), which Date.parse accepts. */
const FIRST_MS = Date.parse("0001-01-01T00:00:00Z");

export function decodeTimeCursor(cursor: string): { ts: string; id: string } {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const m = /^t:(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{6}Z)\|([A-Za-z0-9_]{1,64})$/.exec(text);
  const ms = m?.[1] ? Date.parse(`${m[1]}Z`) : Number.NaN;
  // A time that reads back as itself (no 30 February rolled over into March) in years 0001-9999.
  if (!m?.[1] || !m[2] || !m[3] || !(ms >= FIRST_MS) || new Date(ms).toISOString().slice(0, 19) !== m[1]) {
    throw new BillingError("invalid_request", "cursor is not one this API returned", { details: { param: "cursor" } });
  }
  return { ts: m[1] + m[2], id: m[3] };
}
