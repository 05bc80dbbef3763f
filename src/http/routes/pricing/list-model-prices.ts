import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context.js";
import { withoutKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { cacheable, inForce, modelsJson, PricingModelsResponse } from "./schemas.js";

export const listModelPricesRoute = createRoute({
  method: "get",
  path: "/v1/pricing/models",
  operationId: "listModelPrices",
  ...withoutKey({
    area: "pricing",
    description:
      "Public: no API key. Answers with an ETag; send it back as If-None-Match to get a 304 when nothing changed.",
  }),
  summary: "Public per-unit prices in force now (no auth)",
  responses: {
    200: jsonResponse(PricingModelsResponse, "Prices; cacheable with ETag"),
    304: { description: "Not modified" },
    ...errorResponses(503),
  },
});

export function registerListModelPrices(app: OpenAPIHono<AppEnv>) {
  // `cacheable` answers a body or a 304 itself, which the typed handler cannot express.
  app.openapi(listModelPricesRoute, (async (c: Context<AppEnv>) => {
    const { current, upcoming } = await inForce(c);
    return cacheable(c, { ...modelsJson(current), upcoming });
  }) as never);
}
