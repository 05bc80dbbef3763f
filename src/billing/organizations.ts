import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount } from "../ledger/accounts.js";
import { withTransaction, type BillingContext } from "./context.js";
import { linkReferral } from "./referrals/link-referral.js";

export type Organization = {
  id: string;
  name: string;
  lowBalanceThreshold: bigint;
  billingAnchorDay: number;
  createdAt: Date;
};

type OrgRow = { id: string; name: string; low_balance_threshold: bigint; billing_anchor_day: number; created_at: Date };
const toOrganization = (r: OrgRow): Organization => ({
  id: r.id,
  name: r.name,
  lowBalanceThreshold: r.low_balance_threshold,
  billingAnchorDay: r.billing_anchor_day,
  createdAt: r.created_at,
});

/**
 * Creates the organization and its ledger account (credits) together, so no org ever lacks it;
 * with a referral code, linked to its referrer in the same transaction (an unknown code creates
 * nothing: 400).
 */
export async function createOrganization(
  ctx: BillingContext,
  input: { name: string; id?: string; billingAnchorDay?: number; createdAt?: Date; referralCode?: string },
): Promise<Organization> {
  return withTransaction(ctx, async ({ sql: tx }) => {
    const id = input.id ?? newId("org");
    const [row] = await tx<OrgRow[]>`
      insert into organizations (id, name, billing_anchor_day, created_at)
      values (${id}, ${input.name}, ${input.billingAnchorDay ?? 1}, ${input.createdAt ?? ctx.clock()}) returning *`;
    await tx`insert into ledger_accounts (id, org_id, kind) values (${orgCreditsAccount(id)}, ${id}, 'org_credits')`;
    if (!row) throw new Error("insert into organizations returned no row");
    if (input.referralCode !== undefined) {
      await linkReferral(tx, { referredOrgId: id, code: input.referralCode, now: input.createdAt ?? ctx.clock() });
    }
    return toOrganization(row);
  });
}

export async function getOrganization(ctx: BillingContext, input: { id: string }): Promise<Organization> {
  const { id } = input;
  const [row] = await ctx.sql<OrgRow[]>`select * from organizations where id = ${id}`;
  if (!row) throw new BillingError("not_found", `no organization ${id}`);
  return toOrganization(row);
}

export async function setLowBalanceThreshold(
  ctx: BillingContext,
  input: { orgId: string; threshold: bigint },
): Promise<Organization> {
  const { orgId, threshold } = input;
  const [row] = await ctx.sql<OrgRow[]>`
    update organizations set low_balance_threshold = ${threshold.toString()} where id = ${orgId} returning *`;
  if (!row) throw new BillingError("not_found", `no organization ${orgId}`);
  return toOrganization(row);
}
