import type { MiddlewareHandler } from "hono";
import { PROCESSOR_EVENT_MAX_BYTES, requireSignedDelivery } from "../../billing/payments/signature.js";
import type { AppEnv } from "../context.js";
import { limitBody } from "./body-limit.js";

const eventSizeLimit = limitBody(PROCESSOR_EVENT_MAX_BYTES, "the delivery (a processor event)");

/**
 * Before a webhook's body is read: a delivery without a signature (or with no secret to check it
 * against) is answered at once, and a body larger than any processor event (by its declared
 * length, or counted as it streams) is refused unread, so an unsigned sender cannot make the API
 * buffer megabytes per request. (The app-wide 4 MiB limit skips this route, or it would read first.)
 */
export const processorDelivery: MiddlewareHandler<AppEnv> = (c, next) => {
  requireSignedDelivery(c.req.header("stripe-signature"), c.get("deps").config.STRIPE_WEBHOOK_SECRET);
  return eventSizeLimit(c, next);
};
