/**
 * One error type for everything a client can be told. `code` is stable and documented; the
 * message is for humans and may change. The HTTP layer turns these into the envelope
 * {"error":{"type","code","message","request_id"}}; anything else becomes a 500 `internal_error`.
 */
export const ErrorCodes = {
  invalid_request: { status: 400, type: "invalid_request_error" },
  invalid_json: { status: 400, type: "invalid_request_error" },
  invalid_signature: { status: 400, type: "invalid_request_error" },
  missing_api_key: { status: 401, type: "authentication_error" },
  invalid_api_key: { status: 401, type: "authentication_error" },
  insufficient_scope: { status: 403, type: "permission_error" },
  csrf_token_invalid: { status: 403, type: "permission_error" },
  not_found: { status: 404, type: "not_found_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  idempotency_key_reused: { status: 409, type: "idempotency_error" },
  idempotency_key_required: { status: 400, type: "invalid_request_error" },
  conflict: { status: 409, type: "invalid_request_error" },
  credit_exceeds_invoice: { status: 409, type: "invalid_request_error" },
  payload_too_large: { status: 413, type: "invalid_request_error" },
  unsupported_media_type: { status: 415, type: "invalid_request_error" },
  insufficient_balance: { status: 402, type: "billing_error" },
  spend_limit_reached: { status: 402, type: "billing_error" },
  debt_limit_exceeded: { status: 422, type: "billing_error" },
  unknown_product: { status: 422, type: "invalid_request_error" },
  unknown_model: { status: 422, type: "invalid_request_error" },
  unknown_organization: { status: 422, type: "invalid_request_error" },
  hold_not_found: { status: 422, type: "invalid_request_error" },
  unknown_api_key: { status: 422, type: "invalid_request_error" },
  transaction_not_found: { status: 422, type: "invalid_request_error" },
  no_deposit_in_transaction: { status: 422, type: "invalid_request_error" },
  too_many_logs: { status: 422, type: "invalid_request_error" },
  // Redeeming a promo code (POST /v1/billing/promo-codes/redeem).
  unknown_promo_code: { status: 422, type: "invalid_request_error" },
  promo_code_expired: { status: 422, type: "invalid_request_error" },
  promo_code_inactive: { status: 422, type: "invalid_request_error" },
  promo_code_exhausted: { status: 422, type: "invalid_request_error" },
  promo_code_first_top_up_only: { status: 422, type: "invalid_request_error" },
  promo_code_already_redeemed: { status: 409, type: "invalid_request_error" },
  rate_limited: { status: 429, type: "rate_limit_error" },
  not_configured: { status: 503, type: "api_error" },
  upstream_unavailable: { status: 503, type: "api_error" },
  processor_unavailable: { status: 503, type: "api_error" },
  // The link to PostgreSQL failed: the request may or may not have been applied.
  database_unavailable: { status: 503, type: "api_error" },
  internal_error: { status: 500, type: "api_error" },
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export class BillingError extends Error {
  override name = "BillingError";
  readonly code: ErrorCode;
  readonly status: (typeof ErrorCodes)[ErrorCode]["status"];
  readonly type: string;
  /** Extra machine-readable context, e.g. the field path of a validation failure. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.type = ErrorCodes[code].type;
    this.details = opts.details;
  }
}
