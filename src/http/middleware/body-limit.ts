import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";

type NodeEnv = { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined;

/**
 * 413 `payload_too_large` for a body over `maxBytes`, before anything reads it. Under
 * @hono/node-server a declared Content-Length is checked on the Node request itself: hono's
 * bodyLimit reads c.req.raw.body, which makes the adapter build a web Request and stream for
 * every request (a tenth of the API's CPU on the metering hot path), and Node's parser never
 * delivers more than the declared length. Chunked bodies, and requests outside Node (tests'
 * app.request), go through hono's bodyLimit, which counts the stream and stops at the limit.
 */
export function limitBody(maxBytes: number, what: string): MiddlewareHandler<AppEnv> {
  const tooLarge = () => new BillingError("payload_too_large", `${what} is larger than ${describeBytes(maxBytes)}`);
  const streamed = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw tooLarge();
    },
  });
  return async (c, next) => {
    const headers = (c.env as NodeEnv)?.incoming?.headers;
    if (!headers || headers["transfer-encoding"] !== undefined) return streamed(c, next);
    if (Number(headers["content-length"] ?? 0) > maxBytes) throw tooLarge();
    await next();
  };
}

function describeBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / 1024 / 1024} MiB` : `${n / 1024} KiB`;
}
