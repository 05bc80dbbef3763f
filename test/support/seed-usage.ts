import type { Sql } from "../../src/db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";

/** The catalog's price of one `api` request (catalog/pricing.json, version 2026-01-01), nano-USD. */
const API_REQUEST_NANO = 100_000;

/**
 * Writes `count` usage events of the `api` product for an organization in one INSERT … SELECT
 * generate_series (seconds for a million, where the API would take minutes), as metering would:
 * each priced at the catalog's rate (1 to 7 requests), every third attributed to a project, all
 * charged by one balanced `usage` ledger transaction of their total cost, posted in the same
 * transaction, so the ledger's checks hold and the balance falls by exactly what the events cost.
 * Event i occurs at `start + i × spacingMs` and is recorded then. Needs the owner's connection.
 */
export async function seedUsageEvents(
  sql: Sql,
  opts: { orgId: string; count: number; start: Date; spacingMs: number; label: string },
): Promise<{ total: bigint }> {
  const txnId = `txn_seed_${opts.label}`;
  return sql.begin(async (tx) => {
    // The transaction first: a usage event's transaction must exist when the event is written.
    await tx`
      insert into ledger_transactions (id, org_id, kind, idempotency_key, description, created_at)
      values (${txnId}, ${opts.orgId}, 'usage', ${txnId}, ${`${opts.count} seeded usage events`}, now())`;
    await tx`
      insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost,
        catalog_version, project, transaction_id, recorded_at)
      select 'use_seed_' || ${opts.label} || '_' || g, ${opts.orgId}, 'seed-' || ${opts.label} || '-' || g,
        t, 'api', '', jsonb_build_object('requests', 1 + g % 7), (1 + g % 7) * ${API_REQUEST_NANO}::bigint,
        '2026-01-01', case when g % 3 = 0 then 'proj-' || (g % 5) end, ${txnId}, t
      from generate_series(0, ${opts.count - 1}) g,
        lateral (select ${opts.start}::timestamptz + g * (${opts.spacingMs} * interval '1 millisecond') as t) at`;
    const [row] = await tx<{ total: bigint }[]>`
      select coalesce(sum(cost), 0)::bigint as total from usage_events where transaction_id = ${txnId}`;
    const total = row?.total ?? 0n;
    await tx`
      insert into ledger_entries (transaction_id, account_id, amount) values
        (${txnId}, ${orgCreditsAccount(opts.orgId)}, ${(-total).toString()}),
        (${txnId}, ${SystemAccounts.revenue}, ${total.toString()})`;
    return { total };
  });
}
