/**
 * When a failed delivery is tried again: after the first attempt fails, 5 s; then 5 min, 30 min,
 * 2 h, 5 h, 10 h, 14 h, 20 h and 24 h. Ten attempts over 75 h 35 min (about three days); after the
 * tenth failure the delivery is `failed` (the event stays in the log). Every answer but a 2xx, a
 * timeout, a refused connection, a redirect or a refused target is a failure.
 */
export const RETRY_DELAYS_MS = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  14 * 3_600_000,
  20 * 3_600_000,
  24 * 3_600_000,
] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

/** An endpoint whose deliveries have failed, with no success between, for this long is disabled. */
export const DISABLE_AFTER_FAILING_MS = 5 * 24 * 3_600_000;

/** The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed; null when none is left. */
export function retryDelayMs(attempt: number): number | null {
  return RETRY_DELAYS_MS[attempt - 1] ?? null;
}
