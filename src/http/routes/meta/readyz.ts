import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context.js";
import { dependencyReport } from "./health.js";

/**
 * GET /readyz: for load balancers, 503 while a dependency is down or the process is shutting
 * down: an API without PostgreSQL or Redis cannot meter, so traffic should go to another replica.
 * Not in the OpenAPI document (an operator's probe).
 */
export function registerReadyz(app: OpenAPIHono<AppEnv>) {
  app.get("/readyz", async (c) => {
    const r = await dependencyReport(c);
    const ready = r.ok && !r.draining;
    return c.json({ ready, ...r }, ready ? 200 : 503);
  });
}
