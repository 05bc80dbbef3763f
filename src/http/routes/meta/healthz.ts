import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context.js";
import { dependencyReport } from "./health.js";

/**
 * GET /healthz: each dependency's state, 503 when one is down (for people and monitors). Not in
 * the OpenAPI document (an operator's probe).
 */
export function registerHealthz(app: OpenAPIHono<AppEnv>) {
  app.get("/healthz", async (c) => {
    const r = await dependencyReport(c);
    return c.json(r, r.ok ? 200 : 503);
  });
}
