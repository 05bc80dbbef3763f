import type { Logger } from "pino";

/**
 * Stops a process cleanly on SIGTERM or SIGINT: runs `stop` (finish in-flight work, close pools),
 * then exits 0. A second signal, or `forceAfterMs`, exits at once with 1.
 */
export function onShutdown(name: string, logger: Logger, stop: () => Promise<void>, forceAfterMs = 10_000): void {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, `${name} shutting down`);
    setTimeout(() => process.exit(1), forceAfterMs).unref();
    try {
      await stop();
    } catch (err) {
      logger.error({ err }, `${name} did not stop cleanly`);
      process.exit(1);
    }
    logger.info(`${name} stopped`);
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}
