import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { listBudgets } from "../../../billing/budgets.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { BudgetList, budgetJson } from "./budget-schemas.js";

export const listBudgetsRoute = createRoute({
  operationId: "listBudgets",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Any of the organization's keys may list its budgets (read-only keys too), each with this period's spend (the metered usage recorded this calendar month, UTC), what live holds in its scope hold, and what remains.",
  }),
  method: "get",
  path: "/v1/billing/budgets",
  summary: "List the organization's budgets",
  responses: {
    200: jsonResponse(BudgetList, "The organization's budgets, oldest first"),
    ...errorResponses(401, 403),
  },
});

export function registerListBudgets(app: OpenAPIHono<AppEnv>) {
  app.openapi(listBudgetsRoute, async (c) => {
    const budgets = await listBudgets(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    return c.json({ data: budgets.map(budgetJson) }, 200);
  });
}
