/** Polls `check` every `everyMs` until it gives a value or `signal` aborts; each try's error is passed on to `onError`. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  opts: { everyMs?: number; signal: AbortSignal; onError?: (err: unknown) => void },
): Promise<T | undefined> {
  while (!opts.signal.aborted) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      opts.onError?.(err);
    }
    await new Promise((resolve) => setTimeout(resolve, opts.everyMs ?? 1000));
  }
  return undefined;
}
