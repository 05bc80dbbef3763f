import { z } from "@hono/zod-openapi";
import type { Organization } from "../../../billing/organizations.js";
import type { Subscription } from "../../../billing/subscriptions.js";
import { usd } from "../../present.js";

export const OrgIdParam = z.object({ id: z.string().max(64) });

export const OrgResponse = z
  .object({
    id: z.string().openapi({ example: "org_4fJ2kQ9x0cT1mB7rW3yZ" }),
    name: z.string(),
    low_balance_threshold: z.number(),
    low_balance_threshold_nano_usd: z.string(),
    billing_anchor_day: z.number().int(),
    created_at: z.string(),
  })
  .openapi("Organization");
export type OrgResponse = z.infer<typeof OrgResponse>;

export function orgJson(org: Organization): OrgResponse {
  return {
    id: org.id,
    name: org.name,
    low_balance_threshold: usd(org.lowBalanceThreshold).number,
    low_balance_threshold_nano_usd: org.lowBalanceThreshold.toString(),
    billing_anchor_day: org.billingAnchorDay,
    created_at: org.createdAt.toISOString(),
  };
}

export const SubscriptionResponse = z
  .object({
    org_id: z.string(),
    plan_id: z.string(),
    pending_plan_id: z.string().nullable().openapi({ description: "The plan that takes over at the next cycle" }),
    started_at: z.string(),
    canceled_at: z.string().nullable(),
  })
  .openapi("Subscription");
export type SubscriptionResponse = z.infer<typeof SubscriptionResponse>;

export function subscriptionJson(s: Subscription): SubscriptionResponse {
  return {
    org_id: s.orgId,
    plan_id: s.planId,
    pending_plan_id: s.pendingPlanId,
    started_at: s.startedAt.toISOString(),
    canceled_at: s.canceledAt?.toISOString() ?? null,
  };
}
