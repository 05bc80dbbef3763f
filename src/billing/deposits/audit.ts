import type { Logger } from "pino";
import type { ChainClient } from "../../chain/client.js";
import type { Sql } from "../../db/client.js";
import { newId } from "../../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransaction } from "../../ledger/post-transaction.js";
import { watchLowBalance } from "../low-balance.js";
import { findRemined } from "./verify.js";

/**
 * Re-checks recently credited deposits against the canonical chain. Finality should make this
 * find nothing; if a credited block is ever replaced (a deep reorg, a misconfigured policy), the
 * credit is reversed by a ledger entry and an operator alert is raised: nothing silent.
 */
export async function auditCreditedDeposits(deps: { sql: Sql; chain: ChainClient; logger: Logger }, now: Date, recentBlocks = 10_000n): Promise<number> {
  const latest = await deps.chain.getBlockNumber({ cacheTime: 0 });
  const from = latest > recentBlocks ? latest - recentBlocks : 0n;
  const credited = await deps.sql<{ id: string; block_number: string; block_hash: string; tx_hash: `0x${string}`; log_index: number }[]>`
    select id, block_number::text, block_hash, tx_hash, log_index from husd_deposits where state = 'credited' and block_number >= ${from.toString()}`;
  const hashes = new Map<string, string | null>();
  let reversed = 0;
  for (const d of credited) {
    if (!hashes.has(d.block_number)) {
      const block = await deps.chain.getBlock({ blockNumber: BigInt(d.block_number) }).catch((err: Error) => {
        if (err.name === "BlockNotFoundError") return null; // the chain is now shorter than this block
        throw err; // an RPC failure proves nothing: never reverse on it
      });
      hashes.set(d.block_number, block?.hash ?? null);
    }
    const canonical = hashes.get(d.block_number);
    if (canonical === undefined || canonical === d.block_hash) continue;
    // The transaction may have been mined again in another block with the log at the same place:
    // then the deposit still happened, and only its block moves.
    const moved = await findRemined(deps.chain, d.tx_hash, d.log_index);
    if (moved) {
      await deps.sql`update husd_deposits set block_number = ${moved.blockNumber.toString()}, block_hash = ${moved.blockHash}, updated_at = ${now} where id = ${d.id}`;
      deps.logger.warn({ deposit_id: d.id, from_block: d.block_hash, to_block: moved.blockHash }, "credited HUSD deposit was re-mined in another block; credit stands");
      continue;
    }
    if (await reverseDeposit(deps, d.id, `block ${d.block_number} is now ${canonical ?? "missing"}, not ${d.block_hash}`, now)) reversed++;
  }
  return reversed;
}

export async function reverseDeposit(deps: { sql: Sql; logger: Logger }, depositId: string, why: string, now: Date): Promise<boolean> {
  return deps.sql.begin(async (tx) => {
    const [d] = await tx<{ id: string; org_id: string; amount_nano_usd: bigint; state: string; tx_hash: string }[]>`
      select id, org_id, amount_nano_usd, state, tx_hash from husd_deposits where id = ${depositId} for update`;
    if (!d || d.state !== "credited") return false;
    const lowBalance = await watchLowBalance(tx, d.org_id, now);
    const posted = await postTransaction(tx, {
      kind: "reversal",
      orgId: d.org_id,
      idempotencyKey: `husd-reversal:${d.id}`,
      description: "HUSD deposit reversed: its block left the canonical chain",
      metadata: { deposit_id: d.id, tx_hash: d.tx_hash, why },
      entries: [
        { accountId: orgCreditsAccount(d.org_id), amount: -d.amount_nano_usd },
        { accountId: SystemAccounts.husd, amount: d.amount_nano_usd },
      ],
      createdAt: now,
    });
    await lowBalance(posted.created ? posted.transactionId : null);
    await tx`update husd_deposits set state = 'reversed', reason = ${`reorged_after_credit: ${why}`}, reversal_transaction_id = ${posted.transactionId}, updated_at = ${now}
             where id = ${d.id}`;
    await tx`insert into operator_alerts (id, kind, subject, details, created_at)
             values (${newId("alert")}, 'husd_deposit_reversed', ${d.id}, ${tx.json({ org_id: d.org_id, tx_hash: d.tx_hash, nano_usd: d.amount_nano_usd.toString(), why })}, ${now})
             on conflict (kind, subject) do nothing`;
    deps.logger.error({ deposit_id: d.id, org_id: d.org_id, tx_hash: d.tx_hash, why }, "credited HUSD deposit left the canonical chain: reversed, operator attention needed");
    return true;
  });
}
