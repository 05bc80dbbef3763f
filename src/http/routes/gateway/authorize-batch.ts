import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AuthorizeInput } from "../../../billing/metering.js";
import type { AppEnv } from "../../context.js";
import { asBillingError, errorBody, fromZodError } from "../../errors.js";
import { ErrorEnvelope, errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { AuthorizeRequest, authorizeInput, HoldResponse, holdJson } from "./authorize.js";
import { quickAuthorizeRequest } from "./quick-parse.js";

export const MAX_AUTHORIZATIONS_PER_BATCH = 1000;

// The batch is validated loosely so that one bad request is answered alone instead of sinking the rest.
export const AuthorizeBatchRequest = z
  .object({
    requests: z
      .array(z.unknown())
      .min(1)
      .max(MAX_AUTHORIZATIONS_PER_BATCH)
      .openapi({ type: "array", items: { $ref: "#/components/schemas/AuthorizeRequest" } }),
  })
  .strict()
  .openapi("AuthorizeBatch", {
    example: {
      requests: [
        {
          org_id: "org_4fJ2kQ9x0cT1mB7rW3yZ",
          product: "llm",
          model: "zen-pro",
          estimate: { input_tokens: 1200, output_tokens: 800 },
          idempotency_key: "gw-req-7f3a9c",
        },
      ],
    },
  });

export const AuthorizeBatchResult = z
  .object({
    index: z.number().int(),
    status: z.number().int().openapi({
      description:
        "What POST /v1/billing/authorize would have answered for this request: 201 held, 200 a replay, else the error's status",
      example: 201,
    }),
    hold: HoldResponse.optional().openapi({ description: "With status 200 or 201: the hold" }),
    error: ErrorEnvelope.shape.error.optional().openapi({
      description: "With any other status: the error, as the envelope of the single endpoint carries it",
    }),
  })
  .openapi("AuthorizeBatchResult");
export type AuthorizeBatchResult = z.infer<typeof AuthorizeBatchResult>;

export const AuthorizeBatchResponse = z
  .object({ results: z.array(AuthorizeBatchResult) })
  .openapi("AuthorizeBatchResponse");

export const authorizeBatchRoute = createRoute({
  operationId: "authorizeBatch",
  ...requiresKey({
    scope: "gateway",
    area: "gateway",
    description:
      `Up to ${MAX_AUTHORIZATIONS_PER_BATCH} authorizations in one request, each exactly as POST /v1/billing/authorize ` +
      "would decide it (same prices, same idempotency keys: a key already used answers that hold). Results are per " +
      "request, in order: `status` is the single endpoint's status, with `hold` or `error`. One bad or refused " +
      "request does not fail the others. The gateway's client (client/gateway.ts) gathers concurrent calls into these.",
  }),
  method: "post",
  path: "/v1/billing/authorize/batch",
  summary: "Authorize a batch of estimated costs (one result per request)",
  request: { body: jsonBody(AuthorizeBatchRequest) },
  responses: {
    200: jsonResponse(AuthorizeBatchResponse, "Per-request results, in order"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerAuthorizeBatch(app: OpenAPIHono<AppEnv>) {
  app.openapi(authorizeBatchRoute, async (c) => {
    const { metering, clock, config, logger } = c.get("deps");
    const requestId = c.get("requestId") ?? "req_unknown";
    const requests = c.req.valid("json").requests;
    const results: AuthorizeBatchResult[] = new Array(requests.length);
    const failed = (index: number, err: unknown): AuthorizeBatchResult => {
      const e = asBillingError(err, () =>
        logger.error({ err, request_id: requestId, index }, "authorization of a batch failed"),
      );
      return { index, status: e.status, error: errorBody(e, requestId).error };
    };
    const inputs: AuthorizeInput[] = [];
    const indexes: number[] = [];
    requests.forEach((raw, index) => {
      let request: z.infer<typeof AuthorizeRequest> | undefined = quickAuthorizeRequest(raw);
      if (!request) {
        const parsed = AuthorizeRequest.safeParse(raw);
        if (!parsed.success) {
          results[index] = failed(index, fromZodError(parsed.error, `requests.${index}`));
          return;
        }
        request = parsed.data;
      }
      inputs.push(authorizeInput(request, config.HOLD_TTL_SECONDS));
      indexes.push(index);
    });
    const outcomes = inputs.length > 0 ? await metering.authorizeMany(inputs, clock()) : [];
    outcomes.forEach((outcome, j) => {
      const index = indexes[j];
      if (index === undefined) throw new Error("metering answered more outcomes than requests were submitted");
      results[index] =
        outcome instanceof Error
          ? failed(index, outcome)
          : { index, status: outcome.replayed ? 200 : 201, hold: holdJson(outcome) };
    });
    return c.json({ results }, 200);
  });
}
