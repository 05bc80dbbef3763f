import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createGatewayKey } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { CreatedApiKeyJson, createdApiKeyJson, KeyName } from "../billing/key-schemas.js";

export const CreatePlatformKeyRequest = z
  .object({ scope: z.literal("gateway"), name: KeyName })
  .openapi("CreatePlatformKeyRequest", { example: { scope: "gateway", name: "gateway eu-west" } });
export type CreatePlatformKeyRequest = z.input<typeof CreatePlatformKeyRequest>;

export const createPlatformKeyRoute = createRoute({
  operationId: "createPlatformKey",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "A gateway key is a platform credential: it belongs to no organization and acts for whichever one each request names, so it is for Hanzo's gateway only, never for a customer.",
  }),
  method: "post",
  path: "/v1/admin/keys",
  summary: "Create a gateway key",
  request: { body: jsonBody(CreatePlatformKeyRequest) },
  responses: {
    201: jsonResponse(CreatedApiKeyJson, "The key, in full, this once"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerCreatePlatformKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(createPlatformKeyRoute, async (c) => {
    const key = await createGatewayKey(billingContext(c.get("deps")), { name: c.req.valid("json").name });
    return c.json(createdApiKeyJson(key), 201);
  });
}
