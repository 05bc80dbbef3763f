import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { isConnectionError } from "../db/connection-errors.js";
import { BillingError, type ErrorCode } from "../errors.js";
import { usdFields } from "../ledger/money.js";
import type { AppEnv } from "./context.js";

export type ErrorBody = {
  error: {
    type: string;
    code: ErrorCode;
    message: string;
    request_id: string;
    param?: string;
    budget?: BudgetRefusalJson;
  };
};

/** The hard budget behind a 402 spend_limit_reached (src/billing/holds.ts spendLimitReached). */
type BudgetRefusal = {
  id: string;
  scope: "org" | "project" | "key";
  target: string;
  limit: bigint;
  spent: bigint;
  held: bigint;
  period_start: Date;
  period_end: Date;
};
export type BudgetRefusalJson = ReturnType<typeof budgetRefusalJson>;
function budgetRefusalJson(b: BudgetRefusal) {
  return {
    id: b.id,
    scope: b.scope,
    target: b.target,
    ...usdFields("limit", b.limit),
    ...usdFields("spent", b.spent),
    ...usdFields("held", b.held),
    period_start: b.period_start.toISOString(),
    period_end: b.period_end.toISOString(),
  };
}

export function errorBody(err: BillingError, requestId: string): ErrorBody {
  const param = typeof err.details?.param === "string" ? err.details.param : undefined;
  const budget = err.code === "spend_limit_reached" ? (err.details?.budget as BudgetRefusal | undefined) : undefined;
  return {
    error: {
      type: err.type,
      code: err.code,
      message: err.message,
      request_id: requestId,
      ...(param ? { param } : {}),
      ...(budget ? { budget: budgetRefusalJson(budget) } : {}),
    },
  };
}

/** A zod failure names the first bad field by its path (e.g. `events.3.quantity`) in message and `param`. */
export function fromZodError(error: ZodError, where: string): BillingError {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join(".") ?? "";
  const field = path || where;
  // A bad key of a record (a meter name): zod's own message is "Invalid key in record", the
  // key's rule says what a key must be.
  const message = (issue?.code === "invalid_key" ? issue.issues[0]?.message : undefined) ?? issue?.message ?? "invalid";
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem(s))` : "";
  return new BillingError("invalid_request", `${field}: ${message}${more}`, {
    details: { param: field },
  });
}

/** The one place any error becomes a response. Unknown errors are logged and hidden behind a 500. */
export function handleError(err: Error, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId") ?? "req_unknown";
  const billingError = asBillingError(err, () =>
    c.get("deps")?.logger.error({ err, request_id: requestId }, "unhandled error"),
  );
  if (billingError.code === "database_unavailable") c.header("Retry-After", "1");
  return c.json(errorBody(billingError, requestId), billingError.status);
}

/**
 * What a client is told about `err`: itself if it is a BillingError, the client's fault if the
 * framework or PostgreSQL says so, a 503 `database_unavailable` if the link to PostgreSQL failed,
 * else a 500 `internal_error`. Both of ours are logged (`onUnexpected`).
 */
export function asBillingError(err: unknown, onUnexpected: () => void): BillingError {
  if (err instanceof BillingError) return err;
  if (err instanceof HTTPException) return fromHttpException(err);
  if (err instanceof Error && isUnstorableText(err))
    return new BillingError(
      "invalid_request",
      "text fields must not contain NUL or other characters PostgreSQL cannot store",
    );
  onUnexpected();
  // Lost after the request's transaction committed, or before: the caller cannot know which, and
  // neither can we. A keyed request is safe to send again; an unkeyed one may have been applied.
  if (isConnectionError(err))
    return new BillingError(
      "database_unavailable",
      "the billing database could not be reached or the link to it was lost, so this request may or may not have been applied: " +
        "retry it with the same Idempotency-Key, or check its outcome before sending it again without one",
    );
  return new BillingError("internal_error", "something went wrong on our side; the request id identifies it");
}

function fromHttpException(err: HTTPException): BillingError {
  if (err.status === 400 && /JSON/i.test(err.message))
    return new BillingError("invalid_json", "the request body is not valid JSON");
  if (err.status === 413) return new BillingError("payload_too_large", "the request body is too large");
  if (err.status === 404) return new BillingError("not_found", err.message || "not found");
  return new BillingError("invalid_request", err.message || "bad request");
}

/** PostgreSQL refusing a character (a NUL byte in a path or body field) is the client's input, not our fault. */
function isUnstorableText(err: Error): boolean {
  const code = (err as { code?: string }).code;
  return code === "22021" || code === "22P05";
}
