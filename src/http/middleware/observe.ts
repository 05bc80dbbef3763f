import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AppEnv } from "../context.js";

/**
 * One structured log line per request (with its request id) and the latency histogram. Labels
 * use the route template (/v1/billing/invoices/:id), never the raw path, so ids cannot explode
 * the metric's cardinality.
 */
export const observe: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = performance.now();
  try {
    await next();
  } finally {
    const { logger, metrics } = c.get("deps");
    const seconds = (performance.now() - started) / 1000;
    // A latency, not money: rounded to 0.1 ms for the log line only.
    const durationMs = Math.round(seconds * 10_000) / 10;
    const matched = routePath(c, -1);
    const route = matched === "*" ? "unmatched" : matched;
    metrics?.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, seconds);
    // Probes (health checks, scrapes) are logged at debug: at info they would bury real traffic.
    const level = route === "/healthz" || route === "/readyz" || route === "/metrics" ? "debug" : "info";
    if (logger.isLevelEnabled(level)) {
      logger[level](
        { request_id: c.get("requestId"), method: c.req.method, route, status: c.res.status, duration_ms: durationMs },
        "request",
      );
    }
  }
};
