import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listReferrals, type ReferralsView } from "../../../billing/referrals/list-referrals.js";
import { referralSettings } from "../../../billing/referrals/settings.js";
import { ReferralStates } from "../../../billing/referrals/states.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { usdFields } from "../../present.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";

const usdSchema = (name: string, nullable: boolean) => ({
  [name]: nullable ? z.number().nullable() : z.number(),
  [`${name}_usd`]: nullable ? z.string().nullable() : z.string(),
  [`${name}_nano_usd`]: nullable ? z.string().nullable() : z.string(),
});

const ReferredOrgJson = z
  .object({
    referral_id: z.string(),
    org_name: z.string().openapi({ description: "The referred org's name: nothing else of it is shown" }),
    state: z.enum(ReferralStates).openapi({
      description:
        "linked → qualified (first paid top-up credited) → paid (after the holding period) or capped (over the monthly cap: no reward to you); canceled (top-up reversed before payout), rejected (self-referral), clawed_back (top-up reversed after payout)",
    }),
    reason: z
      .enum(["shared_processor_customer", "shared_card", "shared_wallet", "qualifying_topup_reversed"])
      .nullable(),
    linked_at: z.string(),
    qualified_at: z.string().nullable(),
    payable_at: z
      .string()
      .nullable()
      .openapi({ description: "While qualified: when the reward is paid at the earliest" }),
    decided_at: z.string().nullable(),
    clawed_back_at: z.string().nullable(),
    ...usdSchema("reward", true),
    ...usdSchema("clawed_back", false),
  })
  .openapi("ReferredOrg");

export const ReferralsResponse = z
  .object({
    code: z
      .string()
      .openapi({ example: "k3v9q2m7x4ab", description: "This org's referral code (made on first use, never changes)" }),
    link: z.string().openapi({ description: "The sign-up link with the code (REFERRAL_LINK_BASE_URL?ref=<code>)" }),
    referrals: z.array(ReferredOrgJson).openapi({ description: "The orgs referred, newest first (at most 1,000)" }),
    ...usdSchema("credits_earned", false),
  })
  .openapi("Referrals");
export type ReferralsResponse = z.infer<typeof ReferralsResponse>;

export function referralsJson(v: ReferralsView): ReferralsResponse {
  return {
    code: v.code,
    link: v.link,
    referrals: v.referrals.map((r) => ({
      referral_id: r.referralId,
      org_name: r.orgName,
      state: r.state,
      reason: r.reason,
      linked_at: r.linkedAt.toISOString(),
      qualified_at: r.qualifiedAt?.toISOString() ?? null,
      payable_at: r.payableAt?.toISOString() ?? null,
      decided_at: r.decidedAt?.toISOString() ?? null,
      clawed_back_at: r.clawedBackAt?.toISOString() ?? null,
      ...(r.reward === null
        ? { reward: null, reward_usd: null, reward_nano_usd: null }
        : usdFields("reward", r.reward)),
      ...usdFields("clawed_back", r.clawedBack),
    })),
    ...usdFields("credits_earned", v.creditsEarned),
  };
}

export const getReferralsRoute = createRoute({
  operationId: "getReferrals",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/referrals",
  summary: "The organization's referral code and link, the orgs it referred, and the credits it earned",
  responses: { 200: jsonResponse(ReferralsResponse, "Referrals"), ...errorResponses(401, 403) },
});

export function registerGetReferrals(app: OpenAPIHono<AppEnv>) {
  app.openapi(getReferralsRoute, async (c) => {
    const deps = c.get("deps");
    const view = await listReferrals(billingContext(deps), referralSettings(deps.config), { orgId: principalOrgId(c) });
    return c.json(referralsJson(view), 200);
  });
}
