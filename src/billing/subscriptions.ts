import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import type { Catalog } from "./catalog.js";
import { grantCredits } from "./grants.js";
import { getOrganization } from "./organizations.js";
import { cycleContaining } from "./periods.js";
import { parseUsd } from "../ledger/money.js";

export type Subscription = { orgId: string; planId: string; startedAt: Date; canceledAt: Date | null };
export type Plan = { id: string; name: string; monthlyPrice: bigint; includedCredits: bigint; version: string };

/** The plan as priced by the catalog version in force at `at`. */
export function planAt(catalog: Catalog, planId: string, at: Date): Plan {
  const version = catalog.versionAt(at);
  const plan = version.document.plans.find((p) => p.id === planId);
  if (!plan) throw new BillingError("invalid_request", `unknown plan "${planId}"; see GET /v1/pricing/plans`, { details: { param: "plan_id" } });
  return { id: plan.id, name: plan.name, monthlyPrice: parseUsd(plan.monthly_price), includedCredits: parseUsd(plan.included_credits), version: version.version };
}

export async function getSubscription(sql: Sql | TransactionSql, orgId: string): Promise<Subscription | null> {
  const [row] = await sql<{ org_id: string; plan_id: string; started_at: Date; canceled_at: Date | null }[]>`
    select * from subscriptions where org_id = ${orgId}`;
  return row ? { orgId: row.org_id, planId: row.plan_id, startedAt: row.started_at, canceledAt: row.canceled_at } : null;
}

/**
 * Subscribes (or moves) an organization to a plan from the current cycle on, and grants the
 * plan's included credits for that cycle, expiring at its end (once per org, plan and cycle).
 * The plan's price is charged in arrears at cycle close.
 */
export async function subscribe(sql: Sql, catalog: Catalog, orgId: string, planId: string, now: Date): Promise<Subscription> {
  await catalog.refresh();
  const plan = planAt(catalog, planId, now);
  const org = await getOrganization(sql, orgId);
  const [row] = await sql<{ org_id: string; plan_id: string; started_at: Date; canceled_at: Date | null }[]>`
    insert into subscriptions (org_id, plan_id, started_at) values (${orgId}, ${planId}, ${now})
    on conflict (org_id) do update set plan_id = excluded.plan_id, canceled_at = null,
      started_at = case when subscriptions.canceled_at is null then subscriptions.started_at else excluded.started_at end
    returning *`;
  await grantIncludedCredits(sql, orgId, plan, cycleContaining(now, org.billingAnchorDay), now);
  return { orgId: row!.org_id, planId: row!.plan_id, startedAt: row!.started_at, canceledAt: row!.canceled_at };
}

export async function cancelSubscription(sql: Sql, orgId: string, now: Date): Promise<Subscription> {
  const [row] = await sql<{ org_id: string; plan_id: string; started_at: Date; canceled_at: Date | null }[]>`
    update subscriptions set canceled_at = coalesce(canceled_at, ${now}) where org_id = ${orgId} returning *`;
  if (!row) throw new BillingError("not_found", `organization ${orgId} has no subscription`);
  return { orgId: row.org_id, planId: row.plan_id, startedAt: row.started_at, canceledAt: row.canceled_at };
}

export async function grantIncludedCredits(sql: Sql | TransactionSql, orgId: string, plan: Plan, cycle: { start: Date; end: Date }, now: Date) {
  if (plan.includedCredits <= 0n || cycle.end <= now) return;
  await grantCredits(
    sql,
    {
      orgId,
      amount: plan.includedCredits,
      reason: `${plan.name} plan: included credits for the cycle starting ${cycle.start.toISOString().slice(0, 10)}`,
      expiresAt: cycle.end,
      idempotencyKey: `plan-credits:${plan.id}:${cycle.start.toISOString()}`,
    },
    now,
  );
}
