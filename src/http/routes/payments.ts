import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context.js";
import { registerProcessorCustomer } from "./admin/processor-customer.js";
import { registerPaymentMethods } from "./billing/payment-methods.js";
import { registerProcessorWebhook } from "./webhooks/processor.js";

/** Card payments: the processor's webhook, the org's saved methods, and the operator's customer link. */
export function registerPayments(app: OpenAPIHono<AppEnv>) {
  registerProcessorWebhook(app);
  registerPaymentMethods(app);
  registerProcessorCustomer(app);
}
