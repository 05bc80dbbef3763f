import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { MAX_BUDGETS_PER_ORG, setBudget, type BudgetTarget } from "../../../billing/budgets.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requirePermission } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { BudgetJson, budgetJson, SetBudgetRequest } from "./budget-schemas.js";

export const setBudgetRoute = createRoute({
  operationId: "setBudget",
  ...requiresKey({
    scope: "org",
    area: "billing",
    middleware: [requirePermission("keys:write")],
    description: `Needs the keys:write permission (the keys that manage the organization's keys manage its budgets). Sets the monthly budget of one target: the organization, a project, or one of its keys (another organization's key or an unknown one is 422 unknown_api_key). A new budget counts the spend already recorded this period. Changing the limit re-arms the period's threshold events. At most ${MAX_BUDGETS_PER_ORG} budgets per organization (409 conflict beyond).`,
  }),
  method: "put",
  path: "/v1/billing/budgets",
  summary: "Create or change the budget of the organization, a project or a key",
  request: { body: jsonBody(SetBudgetRequest) },
  responses: {
    201: jsonResponse(BudgetJson, "Created"),
    200: jsonResponse(BudgetJson, "The target's budget, changed"),
    ...errorResponses(400, 401, 403, 409, 422),
  },
});

export function registerSetBudget(app: OpenAPIHono<AppEnv>) {
  app.openapi(setBudgetRoute, async (c) => {
    const body = c.req.valid("json");
    const target: BudgetTarget =
      body.scope === "project"
        ? { scope: "project", project: body.project as string }
        : body.scope === "key"
          ? { scope: "key", apiKeyId: body.api_key_id as string }
          : { scope: "org" };
    const { budget, created } = await setBudget(billingContext(c.get("deps")), {
      principal: c.get("principal"),
      target,
      limit: body.limit,
      enforcement: body.enforcement,
    });
    return created ? c.json(budgetJson(budget), 201) : c.json(budgetJson(budget), 200);
  });
}
