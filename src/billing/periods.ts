import { BillingError } from "../errors.js";

export type Period = { label: string; start: Date; end: Date };

/** The cycle that starts on `anchorDay` of the given month (UTC): [start, start + 1 month). */
export function cycleStartingIn(year: number, month: number, anchorDay = 1): Period {
  const start = new Date(Date.UTC(year, month - 1, anchorDay));
  const end = new Date(Date.UTC(year, month, anchorDay));
  return { label: `${start.getUTCFullYear()}-${String(start.getUTCMonth() + 1).padStart(2, "0")}`, start, end };
}

/** The cycle containing `at` for an organization anchored on `anchorDay` (1-28). */
export function cycleContaining(at: Date, anchorDay = 1): Period {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth() + 1;
  return at.getUTCDate() >= anchorDay
    ? cycleStartingIn(y, m, anchorDay)
    : cycleStartingIn(m === 1 ? y - 1 : y, m === 1 ? 12 : m - 1, anchorDay);
}

export function nextCycle(p: Period, anchorDay = 1): Period {
  return cycleContaining(p.end, anchorDay);
}

/**
 * The months a client may name. Nothing here predates 1970, and a cycle starting in 9998-12 is
 * the last that ends before year 10000, which PostgreSQL refuses. (Date.UTC also reads years
 * 0-99 as 1900-1999: `0099-12` must not quietly mean December 1999.)
 */
export const PERIOD_YEARS = { min: 1970, max: 9998 } as const;

/** `current`, `previous` or `YYYY-MM` (the cycle starting in that month), relative to `now`. */
export function resolvePeriod(text: string, now: Date, anchorDay = 1): Period {
  const current = cycleContaining(now, anchorDay);
  if (text === "current") return current;
  if (text === "previous") return cycleContaining(new Date(current.start.getTime() - 1), anchorDay);
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(text);
  if (!match)
    throw new BillingError("invalid_request", 'period must be "current", "previous" or YYYY-MM', {
      details: { param: "period" },
    });
  const year = Number(match[1]);
  if (year < PERIOD_YEARS.min || year > PERIOD_YEARS.max)
    throw new BillingError(
      "invalid_request",
      `period must be a month from ${PERIOD_YEARS.min}-01 to ${PERIOD_YEARS.max}-12`,
      { details: { param: "period" } },
    );
  return cycleStartingIn(year, Number(match[2]), anchorDay);
}

/** The cycle that starts at `start` and ends at the next anchor date after it (a cycle closed early is followed by a short one). */
export function cycleFrom(start: Date, anchorDay: number): Period {
  const anchored = cycleContaining(start, anchorDay);
  return { label: anchored.label, start, end: anchored.end };
}
