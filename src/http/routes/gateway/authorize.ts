import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Hold } from "../../../billing/holds.js";
import type { AuthorizeInput } from "../../../billing/metering.js";
import { usdFields } from "../../present.js";
import type { AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import {
  ApiKeyIdField,
  IdempotencyKeyField,
  ModelField,
  OrgIdField,
  ProductField,
  ProjectField,
  Quantities,
} from "./schemas.js";

export const AuthorizeRequest = z
  .object({
    org_id: OrgIdField,
    product: ProductField,
    model: ModelField,
    estimate: Quantities,
    idempotency_key: IdempotencyKeyField.optional().openapi({
      description:
        "Retrying with the same key and payload answers with that hold as it is now; the same key with another product, model, estimate, ttl_seconds, api_key_id or project is refused (409 idempotency_key_reused)",
    }),
    ttl_seconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .optional()
      .openapi({ description: "How long the hold lives if never settled (default HOLD_TTL_SECONDS)" }),
    api_key_id: ApiKeyIdField,
    project: ProjectField,
  })
  .strict()
  .openapi("AuthorizeRequest", {
    example: {
      org_id: "org_4fJ2kQ9x0cT1mB7rW3yZ",
      product: "llm",
      model: "zen-pro",
      estimate: { input_tokens: 1200, output_tokens: 800 },
      idempotency_key: "gw-req-7f3a9c",
    },
  });
export type AuthorizeRequest = z.input<typeof AuthorizeRequest>;

export const HoldResponse = z
  .object({
    hold_id: z.string(),
    org_id: z.string(),
    amount: z.number(),
    amount_usd: z.string(),
    amount_nano_usd: z.string(),
    catalog_version: z.string(),
    expires_at: z.string(),
    status: z.enum(["active", "settled", "expired"]).openapi({
      description:
        "The hold as it is now: a replay answers with the hold's current state (settled by usage, or expired past expires_at)",
    }),
    replayed: z.boolean(),
  })
  .openapi("Hold", {
    example: {
      hold_id: "hold_8kP2mN4qR6sT1vW3xY5z",
      org_id: "org_4fJ2kQ9x0cT1mB7rW3yZ",
      amount: 0.011,
      amount_usd: "0.011",
      amount_nano_usd: "11000000",
      catalog_version: "2026-01-01",
      expires_at: "2026-11-15T12:10:00.000Z",
      status: "active",
      replayed: false,
    },
  });
export type HoldResponse = z.infer<typeof HoldResponse>;

export function holdJson(h: Hold): HoldResponse {
  return {
    hold_id: h.id,
    org_id: h.orgId,
    ...usdFields("amount", h.amount),
    catalog_version: h.catalogVersion,
    expires_at: h.expiresAt.toISOString(),
    status: h.status,
    replayed: h.replayed,
  };
}

export const authorizeRoute = createRoute({
  operationId: "authorize",
  ...requiresKey({
    scope: "gateway",
    area: "gateway",
    description:
      "Prices the estimate from the catalog and holds that amount of the organization's credits, or answers 402 " +
      "`insufficient_balance` when the credits not already held cannot cover it. Gateway keys act for any organization.",
  }),
  method: "post",
  path: "/v1/billing/authorize",
  summary: "Authorize an estimated cost before running a request",
  request: { body: jsonBody(AuthorizeRequest) },
  responses: {
    201: jsonResponse(HoldResponse, "Held"),
    200: jsonResponse(
      HoldResponse,
      "A replay of an earlier authorization with the same idempotency key and payload: that hold, as it is now",
    ),
    ...errorResponses(400, 401, 402, 403, 409, 422),
  },
});

/** What metering takes for an authorization request's body (the single and the batch endpoint's). */
export function authorizeInput(body: z.infer<typeof AuthorizeRequest>, defaultTtlSeconds: number): AuthorizeInput {
  return {
    orgId: body.org_id,
    product: body.product,
    model: body.model,
    estimate: body.estimate,
    idempotencyKey: body.idempotency_key,
    ttlSeconds: body.ttl_seconds ?? defaultTtlSeconds,
    apiKeyId: body.api_key_id,
    project: body.project,
  };
}

export function registerAuthorize(app: OpenAPIHono<AppEnv>) {
  app.openapi(authorizeRoute, async (c) => {
    const { metering, clock, config } = c.get("deps");
    const body = c.req.valid("json");
    const hold = await metering.authorize(authorizeInput(body, config.HOLD_TTL_SECONDS), clock());
    return c.json(holdJson(hold), hold.replayed ? 200 : 201);
  });
}
