import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";

/**
 * Links a new organization to the org whose referral code it was created with (POST
 * /v1/admin/orgs {referral_code}), in the transaction that creates it. Once: the referred org is
 * unique in referrals. Because an org is only ever linked at its creation, before it has a code of
 * its own, no referral cycle can form, and an org referred by one that was itself referred earns
 * only its direct referrer anything (the referrer's referrer never does). Codes are matched
 * without regard to case. An unknown code is a 400 and the org is not created.
 */
export async function linkReferral(
  tx: TransactionSql,
  input: { referredOrgId: string; code: string; now: Date },
): Promise<{ referralId: string; referrerOrgId: string }> {
  const code = input.code.trim().toLowerCase();
  const [owner] = await tx<{ org_id: string }[]>`select org_id from referral_codes where code = ${code}`;
  if (!owner || owner.org_id === input.referredOrgId) {
    throw new BillingError("invalid_request", "no such referral code", { details: { param: "referral_code" } });
  }
  const id = newId("rfl");
  const inserted = await tx`
    insert into referrals (id, referrer_org_id, referred_org_id, code, state, created_at, updated_at)
    values (${id}, ${owner.org_id}, ${input.referredOrgId}, ${code}, 'linked', ${input.now}, ${input.now})
    on conflict (referred_org_id) do nothing returning 1`;
  if (inserted.length === 0) {
    throw new BillingError("conflict", "this organization is already linked to a referrer", {
      details: { param: "referral_code" },
    });
  }
  return { referralId: id, referrerOrgId: owner.org_id };
}
