import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { deleteBudget } from "../../../billing/budgets.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requirePermission } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { BudgetIdParam, DeletedBudgetResponse } from "./budget-schemas.js";

export const deleteBudgetRoute = createRoute({
  operationId: "deleteBudget",
  ...requiresKey({
    scope: "org",
    area: "billing",
    middleware: [requirePermission("keys:write")],
    description:
      "Needs the keys:write permission. The budget stops applying at once. Another organization's budget, an unknown or an already deleted one is 404.",
  }),
  method: "delete",
  path: "/v1/billing/budgets/{id}",
  summary: "Delete one of the organization's budgets",
  request: { params: BudgetIdParam },
  responses: {
    200: jsonResponse(DeletedBudgetResponse, "Deleted"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerDeleteBudget(app: OpenAPIHono<AppEnv>) {
  app.openapi(deleteBudgetRoute, async (c) => {
    const deleted = await deleteBudget(billingContext(c.get("deps")), {
      principal: c.get("principal"),
      budgetId: c.req.valid("param").id,
    });
    return c.json({ id: deleted.id, deleted: true as const, deleted_at: deleted.deletedAt.toISOString() }, 200);
  });
}
