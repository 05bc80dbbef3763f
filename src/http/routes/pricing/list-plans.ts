import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context.js";
import { withoutKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { cacheable, inForce, PricingPlansResponse, plansJson } from "./schemas.js";

export const listPlansRoute = createRoute({
  method: "get",
  path: "/v1/pricing/plans",
  operationId: "listPlans",
  ...withoutKey({
    area: "pricing",
    description:
      "Public: no API key. Answers with an ETag; send it back as If-None-Match to get a 304 when nothing changed.",
  }),
  summary: "Public subscription plans in force now (no auth)",
  responses: {
    200: jsonResponse(PricingPlansResponse, "Plans; cacheable with ETag"),
    304: { description: "Not modified" },
    ...errorResponses(503),
  },
});

export function registerListPlans(app: OpenAPIHono<AppEnv>) {
  // `cacheable` answers a body or a 304 itself, which the typed handler cannot express.
  app.openapi(listPlansRoute, (async (c: Context<AppEnv>) => {
    const { current, upcoming } = await inForce(c);
    return cacheable(c, { ...plansJson(current), upcoming });
  }) as never);
}
