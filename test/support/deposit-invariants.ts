import { expect } from "vitest";
import type { Sql } from "../../src/db/client.js";

/**
 * The deposit state machine's money invariants, read from the ledger itself: for every deposit,
 * what its credits and reversals moved on the org's account is 0 or its value (its value exactly
 * when it is credited), and reversals never outnumber credits nor trail them by more than one.
 */
export async function expectDepositInvariants(sql: Sql): Promise<void> {
  const rows = await sql<
    { id: string; state: string; amount: bigint | null; net: string; credits: number; reversals: number }[]
  >`
    select d.id, d.state, d.amount_nano_usd as amount,
           coalesce(sum(e.amount) filter (where e.account_id like 'org:%'), 0)::text as net,
           count(distinct t.id) filter (where t.kind = 'husd_deposit')::int as credits,
           count(distinct t.id) filter (where t.kind = 'reversal')::int as reversals
    from husd_deposits d
    left join ledger_transactions t on t.metadata->>'deposit_id' = d.id and t.kind in ('husd_deposit', 'reversal')
    left join ledger_entries e on e.transaction_id = t.id
    group by d.id, d.state, d.amount_nano_usd`;
  const broken = rows.filter((r) => {
    const net = BigInt(r.net);
    const expected = r.state === "credited" ? (r.amount ?? 0n) : 0n;
    return net !== expected || r.reversals > r.credits || r.credits > r.reversals + 1;
  });
  expect(broken).toEqual([]);
}

/** A deposit's ledger movements in order, as (kind, signed nano-USD on the org's account). */
export async function depositMovements(sql: Sql, depositId: string): Promise<[string, bigint][]> {
  const rows = await sql<{ kind: string; amount: bigint }[]>`
    select t.kind, e.amount from ledger_transactions t join ledger_entries e on e.transaction_id = t.id and e.account_id like 'org:%'
    where t.metadata->>'deposit_id' = ${depositId} order by t.seq`;
  return rows.map((r) => [r.kind, r.amount]);
}
