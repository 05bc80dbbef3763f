import { z } from "@hono/zod-openapi";
import { MoneyError, parseUsd } from "../ledger/money.js";

export const ErrorEnvelope = z
  .object({
    error: z.object({
      type: z.string().openapi({ example: "billing_error" }),
      code: z.string().openapi({ example: "insufficient_balance", description: "Stable, documented; branch on this." }),
      message: z.string(),
      request_id: z.string(),
      param: z.string().optional().openapi({ description: "The request field at fault, when there is one." }),
      budget: z
        .object({
          id: z.string(),
          scope: z.enum(["org", "project", "key"]),
          target: z.string().openapi({ description: "The organization id, the project, or the API key id" }),
          limit: z.number(),
          limit_usd: z.string(),
          limit_nano_usd: z.string(),
          spent: z.number(),
          spent_usd: z.string(),
          spent_nano_usd: z.string(),
          held: z.number(),
          held_usd: z.string(),
          held_nano_usd: z.string(),
          period_start: z.string(),
          period_end: z.string(),
        })
        .optional()
        .openapi({
          description:
            "402 `spend_limit_reached` only: the hard budget that refused, its monthly limit, the period's spend and what live holds in its scope hold",
        }),
    }),
  })
  .openapi("Error");

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid request (`invalid_request`, `invalid_json`)",
  401: "Missing, malformed, unknown or revoked API key",
  402: "Insufficient balance (`insufficient_balance`) or a hard budget reached (`spend_limit_reached`)",
  403: "Key of the wrong scope",
  404: "Not found",
  409: "Idempotency key reused for a different request",
  413: "The request body is too large (`payload_too_large`)",
  422: "Refers to something that does not exist",
  429: "Too many requests (`rate_limited`); retry after the `Retry-After` header's seconds",
  503: "A dependency is not configured or unavailable",
};

/** Error responses in the envelope, for a route's `responses`. */
export function errorResponses<S extends number>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: ERROR_DESCRIPTIONS[s] ?? "Error", content: { "application/json": { schema: ErrorEnvelope } } },
    ]),
  ) as Record<S, { description: string; content: { "application/json": { schema: typeof ErrorEnvelope } } }>;
}

export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true, description, content: { "application/json": { schema } } } as const;
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } } as const;
}

/** A USD amount as a decimal string: exact, at most 9 decimals (nano-USD), within ledger range. */
export const UsdString = z
  .string()
  .max(40)
  .transform((text, ctx) => {
    try {
      return parseUsd(text);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof MoneyError ? err.message : "not a USD amount" });
      return z.NEVER;
    }
  })
  .openapi({ type: "string", example: "25.00", description: "USD as a decimal string; at most 9 decimals" });

/** Positive USD amount no larger than one million dollars per movement: anything bigger is a typo. */
export const PositiveUsdString = UsdString.refine((n) => n > 0n, "must be greater than zero").refine(
  (n) => n <= 1_000_000n * 1_000_000_000n,
  "must be at most 1000000.00 USD in one movement",
);

export const IdempotencyKeyHeader = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
  .openapi({
    description: "Makes the call safe to retry: the same key returns the first result and moves no money again.",
  });

// Years 0001-9999 in UTC: what PostgreSQL and a four-digit ISO year both hold.
export const TIMESTAMP_MIN_MS = Date.parse("0001-01-01T00:00:00Z");
export const TIMESTAMP_END_MS = Date.parse("+010000-01-01T00:00:00Z");

/**
 * An RFC 3339 timestamp with its offset, within years 0001-9999 once in UTC: RFC 3339 allows
 * `9999-12-31T23:59:59-01:00`, which is year 10000 in UTC and refused by PostgreSQL.
 */
export const Timestamp = z.iso.datetime({ offset: true }).refine((text) => {
  const ms = Date.parse(text);
  return ms >= TIMESTAMP_MIN_MS && ms < TIMESTAMP_END_MS;
}, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z once converted to UTC");

export const Cursor = z.string().max(200).optional().openapi({ description: "`next_cursor` from the previous page" });
export const Limit = z.coerce.number().int().min(1).max(100).default(20);

/** A UTF-16 surrogate without its pair (`"\ud800"` in JSON): no UTF-8 text can carry it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Text that PostgreSQL can store and a log line can show: no control characters (a NUL byte is
 * refused by PostgreSQL, and in a batched write it would fail every request of the batch) and no
 * lone surrogates (the batch's JSON would be refused the same way; stored alone, one would come
 * back as U+FFFD). `trim`: surrounding whitespace is dropped before the length is checked.
 */
export function safeText(min: number, max: number, opts: { trim?: boolean } = {}) {
  const text = opts.trim ? z.string().trim() : z.string();
  return (
    text
      .min(min)
      .max(max)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is this rule
      .regex(/^[^\u0000-\u001f\u007f]*$/, "must not contain control characters")
      .refine((s) => !LONE_SURROGATE.test(s), "must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
  );
}
