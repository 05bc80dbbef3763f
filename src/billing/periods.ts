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
  return cycleStartingIn(Number(match[1]), Number(match[2]), anchorDay);
}

/** The cycle that starts at `start` and ends at the next anchor date after it (a cycle closed early is followed by a short one). */
export function cycleFrom(start: Date, anchorDay: number): Period {
  const anchored = cycleContaining(start, anchorDay);
  return { label: anchored.label, start, end: anchored.end };
}
