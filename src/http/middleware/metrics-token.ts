import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * With METRICS_TOKEN set, /metrics answers only `Authorization: Bearer <token>` (compared as
 * fixed-length digests, in constant time); without it, anyone who reaches the port may scrape.
 */
export const requireMetricsToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = c.get("deps").config.METRICS_TOKEN;
  if (token !== undefined) {
    const sent = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (sent === undefined)
      throw new BillingError("missing_api_key", "send the metrics token as Authorization: Bearer <METRICS_TOKEN>");
    if (!timingSafeEqual(digest(sent), digest(token)))
      throw new BillingError("invalid_api_key", "the metrics token is not valid");
  }
  await next();
};
