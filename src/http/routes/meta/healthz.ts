import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context.js";

/** GET /healthz: the process is up and reaches PostgreSQL. Not in the OpenAPI document (an operator's probe). */
export function registerHealthz(app: OpenAPIHono<AppEnv>) {
  app.get("/healthz", async (c) => {
    await c.get("deps").sql`select 1`;
    return c.json({ ok: true });
  });
}
