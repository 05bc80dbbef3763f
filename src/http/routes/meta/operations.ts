import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AppDeps, AppEnv } from "../../context.js";
import { BillingError } from "../../../errors.js";
import { requireScope } from "../../middleware/auth.js";
import { fromOwnPage } from "../../middleware/own-origin.js";
import { requireMetricsToken } from "../../middleware/metrics-token.js";

export const QUEUE_DASHBOARD_PATH = "/admin/queues";

/**
 * A browser cannot send a Bearer header on navigation, so the dashboard also takes the admin
 * key as the password of HTTP Basic auth (any user name) and asks for it with WWW-Authenticate.
 */
const basicAsBearer: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header("authorization");
  if (!header) {
    c.header("WWW-Authenticate", 'Basic realm="hanzo-billing queues", charset="UTF-8"');
  } else if (/^Basic\s+/i.test(header)) {
    const decoded = Buffer.from(header.replace(/^Basic\s+/i, ""), "base64").toString("utf8");
    c.req.raw.headers.set("authorization", `Bearer ${decoded.slice(decoded.indexOf(":") + 1)}`);
  }
  await next();
};

/**
 * A browser keeps Basic credentials and sends them with requests other sites start, so the
 * dashboard's writes (add, retry, clean, empty) are taken from its own pages only (fromOwnPage).
 * Its pages may not be framed by another site either (clickjacking its buttons).
 */
const ownPagesOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.header("X-Frame-Options", "DENY");
  c.header("Content-Security-Policy", "frame-ancestors 'none'");
  if (!["GET", "HEAD", "OPTIONS"].includes(c.req.method) && !fromOwnPage(c.req.raw.headers))
    throw new BillingError("csrf_token_invalid", "the queue dashboard takes changes from its own pages only");
  await next();
};

/** GET /metrics (Prometheus text format) and the BullMQ dashboard under the admin key. */
export function registerOperations(app: OpenAPIHono<AppEnv>, deps: AppDeps) {
  if (deps.metrics) {
    const { registry } = deps.metrics;
    app.get("/metrics", requireMetricsToken, async (c) =>
      c.body(await registry.metrics(), 200, { "content-type": registry.contentType }),
    );
  }
  if (deps.queues) {
    const adapter = new HonoAdapter(serveStatic).setBasePath(QUEUE_DASHBOARD_PATH);
    createBullBoard({
      queues: deps.queues.all().map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
      serverAdapter: adapter,
    });
    app.use(`${QUEUE_DASHBOARD_PATH}/*`, ownPagesOnly, basicAsBearer, requireScope("admin"));
    app.use(QUEUE_DASHBOARD_PATH, ownPagesOnly, basicAsBearer, requireScope("admin"));
    app.route(QUEUE_DASHBOARD_PATH, adapter.registerPlugin());
  }
}
