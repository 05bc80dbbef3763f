import type { BillingContext } from "../context.js";
import { referralCodeOf } from "./codes.js";
import { referralLink, type ReferralSettings } from "./settings.js";
import type { ReferralReason, ReferralState } from "./states.js";

export type ReferredOrg = {
  referralId: string;
  /** The referred org's name: the one thing of the other org the referrer sees. */
  orgName: string;
  state: ReferralState;
  reason: ReferralReason | null;
  linkedAt: Date;
  qualifiedAt: Date | null;
  /** When a qualified referral becomes payable (qualified_at + the holding period); null otherwise. */
  payableAt: Date | null;
  decidedAt: Date | null;
  clawedBackAt: Date | null;
  /** The referrer's reward as granted (null: not paid, capped, or 0 configured). */
  reward: bigint | null;
  /** What a clawback took back of that reward so far. */
  clawedBack: bigint;
};

export type ReferralsView = {
  code: string;
  link: string;
  referrals: ReferredOrg[];
  /** Referral rewards granted to this org as a referrer, less what clawbacks took back. */
  creditsEarned: bigint;
};

/** GET /v1/billing/referrals: the org's code and link (made on first use), and the orgs it referred, newest first. */
export async function listReferrals(
  ctx: BillingContext,
  settings: Pick<ReferralSettings, "linkBaseUrl" | "holdMs">,
  input: { orgId: string },
): Promise<ReferralsView> {
  const now = ctx.clock();
  const code = await referralCodeOf(ctx.sql, input.orgId, now);
  const rows = await ctx.sql<
    {
      id: string;
      org_name: string;
      state: ReferralState;
      reason: ReferralReason | null;
      created_at: Date;
      qualified_at: Date | null;
      decided_at: Date | null;
      clawed_back_at: Date | null;
      reward: bigint | null;
      clawed_back: bigint | null;
    }[]
  >`
    select r.id, o.name as org_name, r.state, r.reason, r.created_at, r.qualified_at, r.decided_at, r.clawed_back_at,
           g.amount as reward, case when g.clawed_back_at is not null then g.expired_amount end as clawed_back
    from referrals r
    join organizations o on o.id = r.referred_org_id
    left join credit_grants g on g.id = r.referrer_grant_id
    where r.referrer_org_id = ${input.orgId}
    order by r.created_at desc, r.id desc
    limit 1000`;
  const referrals = rows.map(
    (r): ReferredOrg => ({
      referralId: r.id,
      orgName: r.org_name,
      state: r.state,
      reason: r.reason,
      linkedAt: r.created_at,
      qualifiedAt: r.qualified_at,
      payableAt:
        r.state === "qualified" && r.qualified_at ? new Date(r.qualified_at.getTime() + settings.holdMs) : null,
      decidedAt: r.decided_at,
      clawedBackAt: r.clawed_back_at,
      reward: r.reward,
      clawedBack: r.clawed_back ?? 0n,
    }),
  );
  const [earned] = await ctx.sql<{ total: string }[]>`
    select coalesce(sum(g.amount - case when g.clawed_back_at is not null then coalesce(g.expired_amount, g.amount - g.consumed) else 0 end), 0)::text as total
    from referrals r join credit_grants g on g.id = r.referrer_grant_id
    where r.referrer_org_id = ${input.orgId}`;
  return {
    code,
    link: referralLink(settings.linkBaseUrl, code),
    referrals,
    creditsEarned: BigInt(earned?.total ?? "0"),
  };
}
