import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import type { Principal } from "./api-keys.js";
import { type BillingContext, type TransactionContext, withTransaction } from "./context.js";
import { lockOrgs } from "./org-locks.js";

/**
 * Budgets: a monthly spending limit for an organization, one of its projects or one of its keys
 * (migration 0031). The period is the calendar month in UTC that contains the time usage is
 * recorded (the ledger's time, not the event's own timestamp). A period's spend is the cost of the
 * metered usage recorded in it that falls under the budget: kept exactly by metering_batch
 * (metering_budget_spend, src/db/functions/metering.sql) and, for a budget made mid-period,
 * counted from usage_events at its creation under the organization's lock, so no batch can record
 * usage between the count and the counter. Hard budgets are checked by metering_decide.
 */
export const BudgetScopes = ["org", "project", "key"] as const;
export type BudgetScope = (typeof BudgetScopes)[number];
export const BudgetEnforcements = ["hard", "soft"] as const;
export type BudgetEnforcement = (typeof BudgetEnforcements)[number];

/** Live budgets an organization may have at once. */
export const MAX_BUDGETS_PER_ORG = 100;
/** The largest monthly limit: 10,000,000 USD (a larger one is a typo, and sums of it stay far inside bigint). */
export const MAX_BUDGET_LIMIT_NANO_USD = 10_000_000n * 1_000_000_000n;

export type BudgetTarget =
  | { scope: "org" }
  | { scope: "project"; project: string }
  | { scope: "key"; apiKeyId: string };

export type Budget = {
  id: string;
  orgId: string;
  scope: BudgetScope;
  project: string | null;
  apiKeyId: string | null;
  limit: bigint;
  enforcement: BudgetEnforcement;
  createdAt: Date;
  updatedAt: Date;
  period: { start: Date; end: Date };
  /** The metered usage recorded in the period under this budget. */
  spent: bigint;
  /** What live holds in the budget's scope hold now (a hard budget counts them as about to be spent). */
  held: bigint;
};

/** The budget period containing `at`: its calendar month in UTC (budget_period_start in src/db/functions/budgets.sql). */
export function budgetPeriod(at: Date): { start: Date; end: Date } {
  const start = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
  return { start, end: new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1)) };
}

/** What the budget's scope is: the org id, the project, or the key id. */
export function budgetTarget(b: Pick<Budget, "orgId" | "scope" | "project" | "apiKeyId">): string {
  return b.scope === "org" ? b.orgId : b.scope === "project" ? (b.project as string) : (b.apiKeyId as string);
}

type BudgetRow = {
  id: string;
  org_id: string;
  scope: BudgetScope;
  project: string | null;
  api_key_id: string | null;
  limit_amount: bigint;
  enforcement: BudgetEnforcement;
  created_at: Date;
  updated_at: Date;
  spent: string;
  held: string;
};

const fromRow = (r: BudgetRow, period: { start: Date; end: Date }): Budget => ({
  id: r.id,
  orgId: r.org_id,
  scope: r.scope,
  project: r.project,
  apiKeyId: r.api_key_id,
  limit: r.limit_amount,
  enforcement: r.enforcement,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  period,
  spent: BigInt(r.spent),
  held: BigInt(r.held),
});

/** The organization's live budgets with this period's spend and holds, oldest first. */
export async function listBudgets(ctx: BillingContext, input: { orgId: string; ids?: string[] }): Promise<Budget[]> {
  const period = budgetPeriod(ctx.clock());
  const ids = input.ids ?? null;
  const rows = await ctx.sql<BudgetRow[]>`
    select b.id, b.org_id, b.scope, b.project, b.api_key_id, b.limit_amount, b.enforcement, b.created_at, b.updated_at,
      coalesce((select p.spent from budget_periods p where p.budget_id = b.id and p.period_start = ${period.start}), 0)::text as spent,
      (case b.scope
        when 'org' then (select a.held from ledger_accounts a where a.id = 'org:' || b.org_id || ':credits')
        else (select coalesce(sum(h.amount), 0) from holds h
              where h.org_id = b.org_id and h.status = 'active' and (h.api_key_id = b.api_key_id or h.project = b.project))
      end)::text as held
    from budgets b
    where b.org_id = ${input.orgId} and b.deleted_at is null and (${ids}::text[] is null or b.id = any(${ids}::text[]))
    order by b.created_at, b.id`;
  return rows.map((r) => fromRow(r, period));
}

/** Budgets are changed by keys that may manage the organization's keys: the same permission (keys:write). */
function requireBudgetsWrite(principal: Principal): string {
  if (principal.scope !== "org" || !principal.orgId || !principal.permissions.includes("keys:write"))
    throw new BillingError("insufficient_scope", "managing budgets needs an org key with the keys:write permission");
  return principal.orgId;
}

function checkLimit(limit: bigint) {
  if (limit <= 0n)
    throw new BillingError("invalid_request", "limit must be greater than zero", { details: { param: "limit" } });
  if (limit > MAX_BUDGET_LIMIT_NANO_USD)
    throw new BillingError("invalid_request", "limit must be at most 10000000 USD a month", {
      details: { param: "limit" },
    });
}

/**
 * Sets the budget of one target (`PUT /v1/billing/budgets`): creates it, or changes the limit and
 * enforcement of the live one. Under the organization's lock (lockOrgs, the lock metering_batch
 * takes), so a new budget's counter starts from exactly the spend recorded so far this period and
 * every later batch adds to it. A changed limit re-arms the period's threshold events; a limit the
 * spend already reached tells it at once.
 */
export async function setBudget(
  ctx: BillingContext,
  input: { principal: Principal; target: BudgetTarget; limit: bigint; enforcement: BudgetEnforcement },
): Promise<{ budget: Budget; created: boolean }> {
  const orgId = requireBudgetsWrite(input.principal);
  checkLimit(input.limit);
  const { target } = input;
  const project = target.scope === "project" ? target.project : null;
  const apiKeyId = target.scope === "key" ? target.apiKeyId : null;
  return withTransaction(ctx, async (tx) => {
    await lockOrgs(tx.sql, [orgId], ctx.clock());
    // The period from the clock read under the lock: read before it, a month that began while
    // this waited (a batch of the new month committed first) would get the old month's counter
    // and alerts, and the new month's usage so far would be in neither.
    const now = ctx.clock();
    const period = budgetPeriod(now);
    if (apiKeyId !== null) {
      const [key] = await tx.sql`select 1 from api_keys where id = ${apiKeyId} and org_id = ${orgId} and scope = 'org'`;
      if (!key)
        throw new BillingError("unknown_api_key", `no api key ${apiKeyId} for this organization`, {
          details: { param: "api_key_id" },
        });
    }
    const [existing] = await tx.sql<{ id: string; limit_amount: bigint }[]>`
      select id, limit_amount from budgets
      where org_id = ${orgId} and scope = ${target.scope} and coalesce(project, '') = ${project ?? ""}
        and coalesce(api_key_id, '') = ${apiKeyId ?? ""} and deleted_at is null`;
    let id: string;
    if (existing) {
      id = existing.id;
      await tx.sql`
        update budgets set limit_amount = ${input.limit}, enforcement = ${input.enforcement}, updated_at = ${now}
        where id = ${id}`;
      if (existing.limit_amount !== input.limit)
        await tx.sql`
          update budget_periods set notified_80_at = null, notified_100_at = null
          where budget_id = ${id} and period_start = ${period.start}`;
    } else {
      const [count] = await tx.sql<{ n: number }[]>`
        select count(*)::int as n from budgets where org_id = ${orgId} and deleted_at is null`;
      if ((count?.n ?? 0) >= MAX_BUDGETS_PER_ORG)
        throw new BillingError(
          "conflict",
          `an organization has at most ${MAX_BUDGETS_PER_ORG} budgets: delete one before making another`,
        );
      id = newId("bud");
      await tx.sql`
        insert into budgets (id, org_id, scope, project, api_key_id, limit_amount, enforcement, created_at, updated_at)
        values (${id}, ${orgId}, ${target.scope}, ${project}, ${apiKeyId}, ${input.limit}, ${input.enforcement}, ${now}, ${now})`;
      await initializePeriod(tx, { id, orgId, project, apiKeyId, period });
    }
    await tx.sql`select budget_note_thresholds(${id}, ${period.start}, ${now})`;
    const [budget] = await listBudgets(tx, { orgId, ids: [id] });
    if (!budget) throw new Error(`budget ${id} vanished inside its own transaction`);
    return { budget, created: !existing };
  });
}

/**
 * The period counter of a new budget: the cost of the usage already recorded this period under it,
 * from usage_events (an event that settled a hold and names no key or project counts under the
 * hold's, as metering_budget_spend counts it). The caller holds the organization's lock, so this
 * sum and the counter that metering_batch goes on adding to are one exact figure. It reads the organization's events (by
 * its index on org_id); a budget is made rarely.
 */
async function initializePeriod(
  tx: TransactionContext,
  b: { id: string; orgId: string; project: string | null; apiKeyId: string | null; period: { start: Date; end: Date } },
) {
  await tx.sql`
    insert into budget_periods (budget_id, period_start, spent)
    select ${b.id}, ${b.period.start}, coalesce(sum(e.cost), 0)
    from usage_events e
    left join holds h on h.id = e.hold_id
    where e.org_id = ${b.orgId} and e.recorded_at >= ${b.period.start} and e.recorded_at < ${b.period.end}
      and (${b.project}::text is null or coalesce(e.project, h.project) = ${b.project})
      and (${b.apiKeyId}::text is null or coalesce(e.api_key_id, h.api_key_id) = ${b.apiKeyId})`;
}

/**
 * Deletes one of the organization's budgets (`DELETE /v1/billing/budgets/{id}`): it stops
 * applying at once; its rows stay (deleted_at), so a budget made again for the same target is a
 * new one that counts the period from the usage. Another organization's budget, or an unknown or
 * deleted one, is 404. Under the organization's lock, as setBudget: a PUT of the same target
 * racing it then either changes the budget before it is deleted or, after, makes a new one (it
 * read the budget live and wrote it deleted otherwise, and answered 500).
 */
export async function deleteBudget(
  ctx: BillingContext,
  input: { principal: Principal; budgetId: string },
): Promise<{ id: string; deletedAt: Date }> {
  const orgId = requireBudgetsWrite(input.principal);
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    await lockOrgs(tx.sql, [orgId], now);
    const [row] = await tx.sql<{ id: string; deleted_at: Date }[]>`
      update budgets set deleted_at = ${now}, updated_at = ${now}
      where id = ${input.budgetId} and org_id = ${orgId} and deleted_at is null
      returning id, deleted_at`;
    if (!row) throw new BillingError("not_found", `no budget ${input.budgetId}`);
    return { id: row.id, deletedAt: row.deleted_at };
  });
}
