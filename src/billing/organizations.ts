import type { Sql, TransactionSql } from "../db/client.js";
import { withTransaction } from "../db/transaction.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, orgHeldAccount } from "../ledger/accounts.js";

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

/** Creates the organization and both of its ledger accounts together, so no org ever lacks one. */
export async function createOrganization(
  sql: Sql | TransactionSql,
  input: { name: string; id?: string; billingAnchorDay?: number; createdAt?: Date },
): Promise<Organization> {
  return withTransaction(sql, async (tx) => {
    const id = input.id ?? newId("org");
    const [row] = await tx<OrgRow[]>`
      insert into organizations (id, name, billing_anchor_day, created_at)
      values (${id}, ${input.name}, ${input.billingAnchorDay ?? 1}, ${input.createdAt ?? new Date()}) returning *`;
    await tx`insert into ledger_accounts (id, org_id, kind) values
      (${orgCreditsAccount(id)}, ${id}, 'org_credits'), (${orgHeldAccount(id)}, ${id}, 'org_held')`;
    return toOrganization(row!);
  });
}

export async function getOrganization(sql: Sql | TransactionSql, id: string): Promise<Organization> {
  const [row] = await sql<OrgRow[]>`select * from organizations where id = ${id}`;
  if (!row) throw new BillingError("not_found", `no organization ${id}`);
  return toOrganization(row);
}

export async function setLowBalanceThreshold(sql: Sql, orgId: string, threshold: bigint): Promise<Organization> {
  const [row] = await sql<OrgRow[]>`
    update organizations set low_balance_threshold = ${threshold.toString()} where id = ${orgId} returning *`;
  if (!row) throw new BillingError("not_found", `no organization ${orgId}`);
  return toOrganization(row);
}
