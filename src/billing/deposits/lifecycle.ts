/**
 * The HUSD deposit state machine. Every change of a deposit's state, and every money movement
 * of a deposit, is one of the transitions below: a conditional write in PostgreSQL that names
 * the state and the block it was decided on, so a decision taken on a view of the chain that
 * another worker has since acted on changes nothing.
 *
 *   seen ─► confirming ─► credited ─► reversed ─► seen …        (its transaction found again)
 *    │          │            │
 *    │          │            └─► confirming                      (re-mined in a block not yet final:
 *    │          │                                                  its credit reversed until it is)
 *    └──────────┴─► orphaned ─► seen …                            (its transaction found again)
 *   rejected: never credited, whatever happens to its block.
 *
 * A deposit is a transfer identified by its content within its transaction (identity.ts); its
 * block, block hash and log index are where it was last seen, and change when its transaction
 * is mined again elsewhere. A canonical appearance is the deposit's content in a canonical block.
 *
 * Invariants:
 *  1. At most one standing credit per deposit, and only while it is credited: credit_count −
 *     reversal_count is 1 when the state is `credited` and 0 otherwise (a check constraint,
 *     migration 0018). So per canonical appearance there is at most one credit.
 *  2. In the ledger, a deposit's credits minus its reversals are 0 or its value (its value exactly
 *     when it is credited): every credit and every reversal moves amount_nano_usd, which never
 *     changes because the value is part of the identity.
 *  3. A reversal only after a credit: reversal k undoes credit k (keys husd-credit:<id>:<k> and
 *     husd-reversal:<id>:<k>, unique per kind in ledger_transactions). Credit k+1 only after
 *     reversal k. A key found already used means the row and the ledger disagree: the
 *     transaction is refused, never recorded as a credit that moved no money.
 *  4. A credit only when the node's finality was read first and then its block at the deposit's
 *     height was the deposit's block holding its content (chain-view.ts), and the row still
 *     names that block under its lock.
 *  5. Something is taken away (orphaned, reversed) only on proof from a node at or past the
 *     block's height that the block was replaced (chain-view.ts): a lagging node proves nothing.
 *  6. Whenever a transaction moves block, every deposit in it is re-read (reconcileTransaction):
 *     content still there moves with it, and a credit stands only if the new block is final;
 *     content gone is reversed (or orphaned); new content is a new deposit.
 *
 * A transition that leaves a deposit pending in another block also makes it due for a check at
 * the next scan, its backoff started over (schedule.ts).
 */
import type { Logger } from "pino";
import type { Sql } from "../../db/client.js";
import { newId } from "../../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";
import { settleOpenInvoices } from "../invoices/settle-open-invoices.js";
import { watchLowBalance } from "../low-balance.js";
import { qualifyReferral } from "../referrals/qualify-referral.js";
import { lockOrgAndReferrer, referralTopupReversed } from "../referrals/topup-reversed.js";

/** The states of the machine above. */
export type DepositState = "seen" | "confirming" | "credited" | "orphaned" | "rejected" | "reversed";

/** Where a deposit was seen on the chain: it moves when its transaction is mined again. */
export type Location = { blockNumber: bigint; blockHash: string; logIndex: number };

/** The deposit as a decision was taken on it: the transition applies only if the row still says so. */
export type Decided = { id: string; blockHash: string };

export class DepositInvariantError extends Error {
  override name = "DepositInvariantError";
}

const PENDING = ["seen", "confirming"] as const;

export async function markConfirming(
  sql: Sql,
  d: Decided,
  at: { logIndex: number; confirmations: bigint },
  now: Date,
): Promise<void> {
  await sql`update husd_deposits set state = 'confirming', log_index = ${at.logIndex}, confirmations = ${at.confirmations.toString()}, updated_at = ${now}
            where id = ${d.id} and state in ${sql(PENDING)} and block_hash = ${d.blockHash}`;
}

/** `head`: the head of the view that proved its block replaced (see reviveDeposit). */
export async function orphanDeposit(sql: Sql, d: Decided, reason: string, now: Date, head: bigint): Promise<void> {
  await sql`update husd_deposits set state = 'orphaned', reason = ${reason}, taken_away_head = ${head.toString()}, updated_at = ${now}
            where id = ${d.id} and state in ${sql(PENDING)} and block_hash = ${d.blockHash}`;
}

/**
 * Its transaction was mined again elsewhere with the transfer in it. A pending deposit starts
 * counting confirmations from the new block; a credited one keeps its credit, which the caller
 * only does when the new block is final (else it reverses it, `reverseDeposit` with `waitAt`).
 */
export async function moveDeposit(
  sql: Sql,
  d: Decided & { state: "seen" | "confirming" | "credited" },
  to: Location,
  now: Date,
): Promise<boolean> {
  const rows =
    d.state === "credited"
      ? await sql`update husd_deposits set block_number = ${to.blockNumber.toString()}, block_hash = ${to.blockHash.toLowerCase()}, log_index = ${to.logIndex}, updated_at = ${now}
                  where id = ${d.id} and state = 'credited' and block_hash = ${d.blockHash} returning id`
      : await sql`update husd_deposits set state = 'confirming', block_number = ${to.blockNumber.toString()}, block_hash = ${to.blockHash.toLowerCase()}, log_index = ${to.logIndex},
                    confirmations = 0, next_check_at = '-infinity', check_attempts = 0, next_check_block = null, updated_at = ${now}
                  where id = ${d.id} and state in ${sql(PENDING)} and block_hash = ${d.blockHash} returning id`;
  return rows.length > 0;
}

/**
 * An orphaned or reversed deposit seen again on the chain: a new appearance, decided from scratch
 * (moving no money: verifyDeposit decides it). In a block other than the one it was taken away
 * in, always. In that same block only from a node's view whose head (`viewHead`: reconcile, from a
 * receipt in a block it judged canonical) is past the head of the view that took it away: a reorg
 * that flipped back, seen by a node that has followed the chain further. A reader behind the reorg
 * (an indexer catching up, a node still on the old fork) shows the old block and proves nothing.
 */
export async function reviveDeposit(
  sql: Sql,
  id: string,
  to: Location,
  now: Date,
  viewHead: bigint | null = null,
): Promise<boolean> {
  const rows = await sql`
    update husd_deposits set state = 'seen', reason = null, block_number = ${to.blockNumber.toString()}, block_hash = ${to.blockHash.toLowerCase()},
      log_index = ${to.logIndex}, confirmations = 0, next_check_at = '-infinity', check_attempts = 0, next_check_block = null,
      taken_away_head = null, updated_at = ${now}
    where id = ${id} and state in ('orphaned', 'reversed')
      and (block_hash is distinct from ${to.blockHash.toLowerCase()}
           or (${viewHead?.toString() ?? null}::bigint > taken_away_head))
    returning id`;
  return rows.length > 0;
}

/**
 * Credits a deposit judged final in the block it names, once: the next credit number, its own
 * ledger key, the row and the movement in one transaction under the row's lock. Returns the
 * state the row is in afterwards (another worker may have decided it first).
 */
export async function creditDeposit(
  deps: { sql: Sql; logger?: Logger },
  d: Decided,
  at: { logIndex: number; confirmations: bigint },
  now: Date,
): Promise<DepositState> {
  return deps.sql.begin(async (tx) => {
    const [row] = await tx<
      {
        id: string;
        org_id: string | null;
        state: DepositState;
        block_hash: string;
        block_number: string;
        tx_hash: string;
        chain_id: number;
        amount_nano_usd: bigint | null;
        credit_count: number;
      }[]
    >`
      select id, org_id, state, block_hash, block_number::text, tx_hash, chain_id, amount_nano_usd, credit_count from husd_deposits where id = ${d.id} for update`;
    if (!row) throw new DepositInvariantError(`no deposit ${d.id}`);
    // Decided by someone else meanwhile (credited, orphaned, or moved to another block).
    if ((row.state !== "seen" && row.state !== "confirming") || row.block_hash !== d.blockHash) return row.state;
    if (!row.org_id || row.amount_nano_usd === null)
      throw new DepositInvariantError(`deposit ${row.id} is pending without an organization or an amount`);
    const k = row.credit_count + 1;
    const amount = row.amount_nano_usd;
    const posted = await postTransfer(tx, {
      kind: "husd_deposit",
      orgId: row.org_id,
      idempotencyKey: `husd-credit:${row.id}:${k}`,
      description: "HUSD deposit",
      metadata: {
        deposit_id: row.id,
        credit: k,
        chain_id: row.chain_id,
        tx_hash: row.tx_hash,
        block_number: row.block_number,
        block_hash: row.block_hash,
        log_index: at.logIndex,
      },
      from: SystemAccounts.husd,
      to: orgCreditsAccount(row.org_id),
      amount,
      createdAt: now,
    });
    if (!posted.created)
      throw new DepositInvariantError(
        `credit ${k} of deposit ${row.id} is already in the ledger while the deposit is ${row.state}`,
      );
    await tx`update husd_deposits set state = 'credited', credit_count = ${k}, credited_at = ${now}, final_at = coalesce(final_at, ${now}),
               confirmations = ${at.confirmations.toString()}, log_index = ${at.logIndex}, credit_transaction_id = ${posted.transactionId}, updated_at = ${now}
             where id = ${row.id}`;
    // Open invoices are paid first, in this transaction; the rest stays in credits.
    await settleOpenInvoices(tx, { orgId: row.org_id, amount, now, source: posted.transactionId });
    // The referred org's first paid top-up (of at least $5) qualifies its referral, in this same transaction.
    await qualifyReferral(tx, {
      orgId: row.org_id,
      kind: "husd",
      ref: row.id,
      transactionId: posted.transactionId,
      amount,
      now,
    });
    deps.logger?.info(
      { deposit_id: row.id, org_id: row.org_id, nano_usd: amount.toString(), credit: k },
      "HUSD deposit credited",
    );
    return "credited" as const;
  });
}

/**
 * Reverses the standing credit of a deposit whose block left the canonical chain: its own ledger
 * key, a low-balance check, an operator alert (opened again if it was acknowledged) and an error
 * log line. With `waitAt`, its transaction was mined again in a block not yet final: the deposit
 * waits there (`confirming`) for the credit it will get again once that block is final. `head`:
 * the head of the view that proved its block replaced (see reviveDeposit).
 * Returns whether this call reversed it.
 */
export async function reverseDeposit(
  deps: { sql: Sql; logger?: Logger },
  d: Decided,
  why: string,
  now: Date,
  at: { head: bigint; waitAt?: Location },
): Promise<boolean> {
  const { waitAt } = at;
  return deps.sql.begin(async (tx) => {
    const [row] = await tx<
      {
        id: string;
        org_id: string;
        state: DepositState;
        block_hash: string;
        tx_hash: string;
        amount_nano_usd: bigint;
        credit_count: number;
        reversal_count: number;
      }[]
    >`
      select id, org_id, state, block_hash, tx_hash, amount_nano_usd, credit_count, reversal_count from husd_deposits where id = ${d.id} for update`;
    if (!row || row.state !== "credited" || row.block_hash !== d.blockHash) return false;
    const k = row.reversal_count + 1;
    if (k !== row.credit_count)
      throw new DepositInvariantError(
        `deposit ${row.id} is credited with ${row.credit_count} credits and ${row.reversal_count} reversals`,
      );
    // The org and its referrer in id order, before the reversal locks the org alone (a clawback follows).
    await lockOrgAndReferrer(tx, { orgId: row.org_id, kind: "husd", ref: row.id, now });
    const lowBalance = await watchLowBalance(tx, row.org_id, now);
    const posted = await postTransfer(tx, {
      kind: "reversal",
      orgId: row.org_id,
      idempotencyKey: `husd-reversal:${row.id}:${k}`,
      description: "HUSD deposit reversed: its block left the canonical chain",
      metadata: { deposit_id: row.id, reversal: k, tx_hash: row.tx_hash, block_hash: row.block_hash, why },
      from: orgCreditsAccount(row.org_id),
      to: SystemAccounts.husd,
      amount: row.amount_nano_usd,
      createdAt: now,
    });
    if (!posted.created)
      throw new DepositInvariantError(
        `reversal ${k} of deposit ${row.id} is already in the ledger while the deposit is credited`,
      );
    await lowBalance(posted.transactionId);
    // A referral this deposit qualified is canceled (before payout) or clawed back (after).
    await referralTopupReversed(tx, { kind: "husd", ref: row.id, now });
    const reason = `reorged_after_credit: ${why}`;
    if (waitAt) {
      await tx`update husd_deposits set state = 'confirming', reason = ${reason}, reversal_count = ${k}, reversal_transaction_id = ${posted.transactionId},
                 block_number = ${waitAt.blockNumber.toString()}, block_hash = ${waitAt.blockHash.toLowerCase()}, log_index = ${waitAt.logIndex}, confirmations = 0,
                 next_check_at = '-infinity', check_attempts = 0, next_check_block = null, updated_at = ${now}
               where id = ${row.id}`;
    } else {
      await tx`update husd_deposits set state = 'reversed', reason = ${reason}, reversal_count = ${k}, reversal_transaction_id = ${posted.transactionId},
                 taken_away_head = ${at.head.toString()}, updated_at = ${now}
               where id = ${row.id}`;
    }
    const details = {
      org_id: row.org_id,
      tx_hash: row.tx_hash,
      nano_usd: row.amount_nano_usd.toString(),
      reversal: k,
      why,
    };
    await tx`insert into operator_alerts (id, kind, subject, details, created_at)
             values (${newId("alert")}, 'husd_deposit_reversed', ${row.id}, ${tx.json(details)}, ${now})
             on conflict (kind, subject) do update set details = excluded.details, created_at = excluded.created_at, acknowledged_at = null`;
    deps.logger?.error(
      { deposit_id: row.id, ...details },
      "credited HUSD deposit left the canonical chain: reversed, operator attention needed",
    );
    return true;
  });
}
