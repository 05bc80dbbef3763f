import { OpenAPIHono } from "@hono/zod-openapi";
import { BillingError } from "../errors.js";
import type { AppDeps, AppEnv } from "./context.js";
import { fromZodError, handleError } from "./errors.js";
import { limitBody } from "./middleware/body-limit.js";
import { observe } from "./middleware/observe.js";
import { recordWrites } from "./middleware/record-writes.js";
import { limitRequests } from "./middleware/rate-limit.js";
import { requestId } from "./middleware/request-id.js";
import { routes } from "./routes/index.js";
import { PROCESSOR_WEBHOOK_PATH } from "./routes/webhooks/receive-processor-event.js";

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

  app.use("*", async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.use("*", requestId);
  app.use("*", observe);
  // Inside observe, so the request's latency includes recording its WAL position.
  app.use("*", recordWrites);
  // Counted and limited before any byte of the body is read: the body limit buffers a chunked
  // body (up to 4 MiB) to count it, which a client over its limit must not get from us.
  app.use("*", limitRequests);
  // The processor's webhook has its own, smaller limit, checked after its signature header.
  const requestBodyLimit = limitBody(4 * 1024 * 1024, "the request body");
  app.use("*", (c, next) => (c.req.path === PROCESSOR_WEBHOOK_PATH ? next() : requestBodyLimit(c, next)));

  for (const register of routes) register(app, deps);

  app.notFound((c) => handleError(new BillingError("not_found", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError((err, c) => handleError(err, c));
  return app;
}

export type App = ReturnType<typeof createApp>;
