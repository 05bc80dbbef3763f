import { BillingError } from "../errors.js";

export type Period = { label: string; start: Date; end: Date };

/** A calendar month in UTC: [start, end). */
export function monthPeriod(year: number, month: number): Period {
  const start = new Date(Date.UTC(year, month - 1, 1));
  const end = new Date(Date.UTC(year, month, 1));
  return { label: `${start.getUTCFullYear()}-${String(start.getUTCMonth() + 1).padStart(2, "0")}`, start, end };
}

/** `current`, `previous` or `YYYY-MM`, relative to `now`. */
export function resolvePeriod(text: string, now: Date): Period {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth() + 1;
  if (text === "current") return monthPeriod(y, m);
  if (text === "previous") return monthPeriod(m === 1 ? y - 1 : y, m === 1 ? 12 : m - 1);
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(text);
  if (!match) throw new BillingError("invalid_request", 'period must be "current", "previous" or YYYY-MM', { details: { param: "period" } });
  return monthPeriod(Number(match[1]), Number(match[2]));
}
