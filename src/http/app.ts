import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { BillingError } from "../errors.js";
import type { AppDeps, AppEnv } from "./context.js";
import { fromZodError, handleError } from "./errors.js";
import { observe } from "./middleware/observe.js";
import { requestId } from "./middleware/request-id.js";
import { routes } from "./routes/index.js";

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

  for (const register of routes) register(app, deps);

  app.notFound((c) => handleError(new BillingError("not_found", `no route for ${c.req.method} ${c.req.path}`), c));
  app.onError((err, c) => handleError(err, c));
  return app;
}

export type App = ReturnType<typeof createApp>;
