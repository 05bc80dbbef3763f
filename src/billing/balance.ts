import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { orgCreditsAccount, orgHeldAccount } from "../ledger/accounts.js";
import { expirableAmount, pendingExpiry } from "./grants.js";

/**
 * An organization's money, in nano-USD.
 * - credits: what it can spend now (its credits account, less grants that have expired but
 *   whose expiry the worker has not posted yet). Negative only after a usage overrun.
 * - held: reserved by live holds (authorized, not yet settled).
 * - balance: credits + held, everything the org has.
 */
export type Balance = { balance: bigint; credits: bigint; held: bigint; lowBalanceThreshold: bigint };

export async function getBalance(sql: Sql | TransactionSql, orgId: string, now: Date): Promise<Balance> {
  const rows = await sql<{ kind: string; balance: bigint; low_balance_threshold: bigint }[]>`
    select a.kind, a.balance, o.low_balance_threshold
    from organizations o join ledger_accounts a on a.org_id = o.id
    where o.id = ${orgId} and a.id in (${orgCreditsAccount(orgId)}, ${orgHeldAccount(orgId)})`;
  if (rows.length === 0) throw new BillingError("not_found", `no organization ${orgId}`);
  const creditsAccount = rows.find((r) => r.kind === "org_credits")?.balance ?? 0n;
  const held = rows.find((r) => r.kind === "org_held")?.balance ?? 0n;
  const credits = creditsAccount - effectiveExpiry(await pendingExpiry(sql, orgId, now), creditsAccount, held);
  return { balance: credits + held, credits, held, lowBalanceThreshold: rows[0]!.low_balance_threshold };
}

/** The part of expired-but-unposted grants that counts against the org: the rule expireGrants posts by. */
export function effectiveExpiry(pending: bigint, creditsAccount: bigint, held: bigint): bigint {
  const cap = expirableAmount(creditsAccount, held);
  return pending < cap ? pending : cap;
}
