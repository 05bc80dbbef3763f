import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { BillingError } from "../errors.js";
import type { AppDeps, AppEnv } from "./context.js";
import { fromZodError, handleError } from "./errors.js";
import { observe } from "./middleware/observe.js";
import { requestId } from "./middleware/request-id.js";
import { registerAdminCredits } from "./routes/admin/credits.js";
import { registerAdminKeys } from "./routes/admin/keys.js";
import { registerBillingAdmin } from "./routes/admin/billing-admin.js";
import { registerAdminOrgs } from "./routes/admin/orgs.js";
import { registerBalance } from "./routes/billing/balance.js";
import { registerHusd } from "./routes/billing/husd.js";
import { registerInvoices } from "./routes/billing/invoices.js";
import { registerTransactions } from "./routes/billing/transactions.js";
import { registerUsageReport } from "./routes/billing/usage-report.js";
import { registerAuthorize } from "./routes/gateway/authorize.js";
import { registerUsageIngest } from "./routes/gateway/usage.js";
import { registerPricing } from "./routes/pricing/pricing.js";
import { registerPayments } from "./routes/payments.js";
import { registerDocs } from "./routes/meta/docs.js";
import { registerOperations } from "./routes/meta/operations.js";

export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "Hanzo Billing",
    version: "0.1.0",
    description:
      "Credits, metering, invoices and HUSD top-ups for Hanzo Cloud. USD amounts appear twice: as JSON numbers for display " +
      "(the documented shapes) and exactly, as integer nano-USD (1e-9 USD) strings in *_nano_usd fields.",
  },
} as const;

/** Builds the whole HTTP app from its dependencies; the server is started elsewhere (bin/api.ts). */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({
    // Every validation failure becomes a 400 in the envelope that names the field.
    defaultHook: (result) => {
      if (!result.success) {
        const err = fromZodError(result.error, result.target);
        if (err.details?.param === "idempotency-key") {
          throw new BillingError(
            "idempotency_key_required",
            "send an Idempotency-Key header (1-255 printable characters)",
            {
              details: { param: "Idempotency-Key" },
            },
          );
        }
        throw err;
      }
    },
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "hk-… API key",
  });

  app.use("*", async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.use("*", requestId);
  app.use("*", observe);
  const MAX_BODY = 4 * 1024 * 1024;
  const tooLarge = () => new BillingError("payload_too_large", "the request body is larger than 4 MiB");
  const streamedBodyLimit = bodyLimit({
    maxSize: MAX_BODY,
    onError: () => {
      throw tooLarge();
    },
  });
  app.use("*", async (c, next) => {
    // Under @hono/node-server a declared Content-Length is checked on the Node request itself:
    // hono's bodyLimit reads c.req.raw.body, which makes the adapter build a web Request and
    // stream for every request (a tenth of the API's CPU on the metering hot path). Node's
    // parser never delivers more than the declared length. Chunked bodies, and requests
    // outside Node (tests' app.request), still go through bodyLimit, which counts the stream.
    const headers = (c.env as { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined)
      ?.incoming?.headers;
    if (!headers || headers["transfer-encoding"] !== undefined) return streamedBodyLimit(c, next);
    if (Number(headers["content-length"] ?? 0) > MAX_BODY) throw tooLarge();
    await next();
  });

  app.get("/healthz", async (c) => {
    await deps.sql`select 1`;
    return c.json({ ok: true });
  });

  registerAdminOrgs(app);
  registerAdminKeys(app);
  registerAdminCredits(app);
  registerBalance(app);
  registerTransactions(app);
  registerUsageReport(app);
  registerAuthorize(app);
  registerUsageIngest(app);
  registerPricing(app);
  registerInvoices(app);
  registerBillingAdmin(app);
  registerHusd(app);
  registerPayments(app);

  app.doc31("/v1/openapi.json", OPENAPI_DOCUMENT);
  registerDocs(app, OPENAPI_DOCUMENT);
  registerOperations(app, deps);

  app.notFound((c) => handleError(new BillingError("not_found", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError((err, c) => handleError(err, c));
  return app;
}

export type App = ReturnType<typeof createApp>;
