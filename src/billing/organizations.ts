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
  return (await createOrganizationOnce(ctx, input)).org;
}

/**
 * createOrganization, once per idempotency key: a request with a key an organization already
 * has answers with that organization (`created: false`) and makes nothing, or is refused (409
 * idempotency_key_reused) if it asks for another name, anchor day or referral code. The unique key decides
 * between racing requests: the later waits for the first to commit, then finds its organization.
 */
export async function createOrganizationOnce(
  ctx: BillingContext,
  input: {
    name: string;
    id?: string;
    billingAnchorDay?: number;
    createdAt?: Date;
    referralCode?: string;
    idempotencyKey?: string | undefined;
  },
): Promise<{ org: Organization; created: boolean }> {
  return withTransaction(ctx, async ({ sql: tx }) => {
    const id = input.id ?? newId("org");
    const anchorDay = input.billingAnchorDay ?? 1;
    const [row] = await tx<OrgRow[]>`
      insert into organizations (id, name, billing_anchor_day, created_at, idempotency_key)
      values (${id}, ${input.name}, ${anchorDay}, ${input.createdAt ?? ctx.clock()}, ${input.idempotencyKey ?? null})
      on conflict (idempotency_key) where idempotency_key is not null do nothing
      returning *`;
    if (!row) {
      const [first] = await tx<
        OrgRow[]
      >`select * from organizations where idempotency_key = ${input.idempotencyKey ?? null}`;
      if (!first) throw new Error("an organization's idempotency key conflicted, but no organization has it");
      // The referral code is part of the request: the first one linked the organization to its
      // code's owner (only creation links one), so a retry naming another code, or none where the
      // first had one, is another request.
      const [link] = await tx<{ code: string }[]>`select code from referrals where referred_org_id = ${first.id}`;
      const code = input.referralCode?.trim().toLowerCase() ?? null;
      if (first.name !== input.name || first.billing_anchor_day !== anchorDay || (link?.code ?? null) !== code)
        throw new BillingError(
          "idempotency_key_reused",
          "this idempotency key already made an organization with another name, billing anchor day or referral code",
        );
      return { org: toOrganization(first), created: false };
    }
    await tx`insert into ledger_accounts (id, org_id, kind) values (${orgCreditsAccount(id)}, ${id}, 'org_credits')`;
    if (input.referralCode !== undefined) {
      await linkReferral(tx, { referredOrgId: id, code: input.referralCode, now: input.createdAt ?? ctx.clock() });
    }
    return { org: toOrganization(row), created: true };
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
