import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getOrganization } from "../../../billing/organizations.js";
import { cycleContaining } from "../../../billing/periods.js";
import { type Plan, subscribedPlanAt } from "../../../billing/plans.js";
import { getSubscription } from "../../../billing/subscriptions.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { usdFields } from "../../present.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";

const money = (name: string, description: string) => ({
  [name]: z.number().openapi({ description: `${description} USD, for display; exact: ${name}_usd.` }),
  [`${name}_usd`]: z.string().openapi({ description: "Exact decimal USD" }),
  [`${name}_nano_usd`]: z.string().openapi({ description: "Exact, integer nano-USD" }),
});

const PlanJson = z
  .object({
    id: z.string().openapi({ example: "pro" }),
    name: z.string().openapi({ example: "Pro" }),
    ...money("monthly_price", "Charged per cycle, in arrears at the cycle's close."),
    ...money("included_credits", "Credits granted each cycle, expiring at its end."),
  })
  .openapi("SubscriptionPlan");

export const OrgSubscriptionResponse = z
  .object({
    plan: PlanJson.nullable().openapi({ description: "The plan charged for this cycle; null: no subscription" }),
    pending_plan: PlanJson.nullable().openapi({ description: "The plan that takes over at the next cycle" }),
    started_at: z.string().nullable(),
    canceled_at: z
      .string()
      .nullable()
      .openapi({ description: "Set once canceled: the cycle it was canceled in is still charged" }),
    period: z
      .object({ start: z.string(), end: z.string() })
      .openapi({ description: "The current billing cycle, [start, end) UTC" }),
  })
  .openapi("OrgSubscription");
export type OrgSubscriptionResponse = z.infer<typeof OrgSubscriptionResponse>;

export const getSubscriptionRoute = createRoute({
  operationId: "getSubscription",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "The plan as priced for the organization now (the newest catalog version listing it), and the current cycle. No subscription: plan null.",
  }),
  method: "get",
  path: "/v1/billing/subscription",
  summary: "The organization's plan and current billing cycle",
  responses: { 200: jsonResponse(OrgSubscriptionResponse, "The subscription"), ...errorResponses(401, 403) },
});

const planJson = (p: Plan) => ({
  id: p.id,
  name: p.name,
  ...usdFields("monthly_price", p.monthlyPrice),
  ...usdFields("included_credits", p.includedCredits),
});

export function registerGetSubscription(app: OpenAPIHono<AppEnv>) {
  app.openapi(getSubscriptionRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const orgId = principalOrgId(c);
    const now = ctx.clock();
    const org = await getOrganization(ctx, { id: orgId });
    const subscription = await getSubscription(ctx, { orgId });
    const cycle = cycleContaining(now, org.billingAnchorDay);
    if (subscription) await ctx.catalog.refresh();
    // Canceled before this cycle began: nothing is charged for it.
    const active = subscription && !(subscription.canceledAt && subscription.canceledAt <= cycle.start);
    const body = {
      plan: active ? planJson(subscribedPlanAt(ctx.catalog, subscription.planId, now)) : null,
      pending_plan:
        active && subscription.pendingPlanId
          ? planJson(subscribedPlanAt(ctx.catalog, subscription.pendingPlanId, now))
          : null,
      started_at: active ? subscription.startedAt.toISOString() : null,
      canceled_at: active ? (subscription.canceledAt?.toISOString() ?? null) : null,
      period: { start: cycle.start.toISOString(), end: cycle.end.toISOString() },
    };
    return c.json(body as OrgSubscriptionResponse, 200);
  });
}
