import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { linkProcessorCustomer } from "../../../billing/payments/customers.js";
import { CustomerId } from "../../../billing/payments/objects.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { OrgIdParam } from "./schemas.js";

export const LinkProcessorCustomerRequest = z
  .object({ customer_id: CustomerId.openapi({ example: "cus_NffrFeUfNV2Hib" }) })
  .strict()
  .openapi("LinkProcessorCustomerRequest");
export type LinkProcessorCustomerRequest = z.input<typeof LinkProcessorCustomerRequest>;

// The customer id is not echoed back: processor ids never leave the server, in any response.
export const ProcessorCustomerLink = z
  .object({ org_id: z.string(), linked: z.literal(true), linked_at: z.string() })
  .openapi("ProcessorCustomerLink");
export type ProcessorCustomerLink = z.infer<typeof ProcessorCustomerLink>;

export const linkProcessorCustomerRoute = createRoute({
  operationId: "linkProcessorCustomer",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "Processor events find their organization only through this link (payment metadata is not trusted for it). Permanent: the " +
      "same pair again is a 200 no-op; another customer for this org, or this customer for another org, is a 409.",
  }),
  method: "put",
  path: "/v1/admin/orgs/{id}/processor-customer",
  summary: "Link an organization to its card processor customer",
  request: { params: OrgIdParam, body: jsonBody(LinkProcessorCustomerRequest) },
  responses: {
    201: jsonResponse(ProcessorCustomerLink, "Linked"),
    200: jsonResponse(ProcessorCustomerLink, "Already linked to this customer"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export function registerLinkProcessorCustomer(app: OpenAPIHono<AppEnv>) {
  app.openapi(linkProcessorCustomerRoute, async (c) => {
    const { link, created } = await linkProcessorCustomer(billingContext(c.get("deps")), {
      orgId: c.req.valid("param").id,
      customerId: c.req.valid("json").customer_id,
    });
    const body = { org_id: link.orgId, linked: true as const, linked_at: link.linkedAt.toISOString() };
    return created ? c.json(body, 201) : c.json(body, 200);
  });
}
