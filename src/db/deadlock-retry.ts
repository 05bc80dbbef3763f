/**
 * Runs a whole transaction again when PostgreSQL aborted it to break a deadlock (SQLSTATE 40P01):
 * it rolled back entirely, so running it again from the start is safe, and the other transaction
 * of the cycle has gone on. For paths whose lock order cannot be fixed in advance (a processor
 * event learns which payment's locks it needs only as it reads); each attempt waits out the
 * server's deadlock_timeout before it is chosen, so a few attempts are enough.
 */
export async function retryOnDeadlock<T>(run: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= attempts || (err as { code?: unknown } | null)?.code !== "40P01") throw err;
    }
  }
}
