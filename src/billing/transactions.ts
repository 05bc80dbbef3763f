import type postgres from "postgres";
import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import type { BillingContext } from "./context.js";

export type LedgerTransactionView = {
  id: string;
  kind: string;
  /** Net effect on the organization's balance (credits + held), nano-USD. */
  amount: bigint;
  description: string | null;
  metadata: Record<string, unknown>;
  createdAt: Date;
};

export type Page<T> = { data: T[]; nextCursor: string | null };

/** Cursor = the last row's sequence number, opaque to clients. */
export function encodeCursor(seq: bigint): string {
  return Buffer.from(`s:${seq}`).toString("base64url");
}

const MAX_SEQ = 2n ** 63n - 1n; // seq is a PostgreSQL bigint

export function decodeCursor(cursor: string): bigint {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const digits = /^s:(\d{1,19})$/.exec(text)?.[1];
  const seq = digits === undefined ? undefined : BigInt(digits);
  if (seq === undefined || seq > MAX_SEQ)
    throw new BillingError("invalid_request", "cursor is not one this API returned", { details: { param: "cursor" } });
  return seq;
}

/** A transaction row as PostgreSQL returns it: `amount` is the org's net, as exact text. */
export type LedgerTransactionRow = {
  id: string;
  seq: bigint;
  kind: string;
  amount: string;
  description: string | null;
  metadata: Record<string, unknown>;
  created_at: Date;
};

/**
 * The org's ledger transactions as the API shows them, each with its net effect on the org's
 * balance (the sum of its entries on the org's accounts), not yet run: the JSON list pages it
 * newest first; the CSV export reads a time range, oldest first, through a cursor. Both turn
 * rows into views with toTransactionView.
 *
 * Two sources, each read through its (org_id, seq) index: the transactions that name the org,
 * and the metering batches' usage transactions it took part in (ledger_transaction_orgs, migration
 * 0040), shown with the org's own metadata. With a limit, each source stops at the limit.
 */
export function transactionsQuery(
  sql: Sql | TransactionSql,
  opts: {
    orgId: string;
    order: "newest" | "oldest";
    /** Only transactions with a smaller seq (the JSON's cursor). */
    beforeSeq?: bigint;
    /** Only transactions created in [start, end). */
    createdIn?: { start: Date; end: Date };
    limit?: number;
  },
): postgres.PendingQuery<LedgerTransactionRow[]> {
  const { orgId } = opts;
  const order = opts.order === "newest" ? sql`desc` : sql`asc`;
  const limit = opts.limit !== undefined ? sql`limit ${opts.limit}` : sql``;
  // The same filters on either source, on its own columns (`x`).
  const filters = (x: postgres.Helper<string>) => sql`
    ${opts.beforeSeq !== undefined ? sql`and ${x}.seq < ${opts.beforeSeq.toString()}` : sql``}
    ${opts.createdIn ? sql`and ${x}.created_at >= ${opts.createdIn.start} and ${x}.created_at < ${opts.createdIn.end}` : sql``}`;
  return sql<LedgerTransactionRow[]>`
    select l.id, l.seq, l.kind, l.description, l.metadata, l.created_at,
      (select coalesce(sum(e.amount), 0)::text from ledger_entries e
        join ledger_accounts a on a.id = e.account_id
        where e.transaction_id = l.id and e.created_at = l.created_at and a.org_id = ${orgId}) as amount
    from (
      (select t.id, t.seq, t.kind, t.description, t.metadata, t.created_at
       from ledger_transactions t
       where t.org_id = ${orgId} ${filters(sql("t"))}
       order by t.seq ${order} ${limit})
      union all
      (select t.id, m.seq, t.kind, t.description, m.metadata, t.created_at
       from ledger_transaction_orgs m
       cross join lateral (select t.* from ledger_transactions t where t.id = m.transaction_id limit 1) t
       where m.org_id = ${orgId} ${filters(sql("m"))}
       order by m.seq ${order} ${limit})
    ) l
    order by l.seq ${order}
    ${limit}`;
}

export function toTransactionView(r: LedgerTransactionRow): LedgerTransactionView {
  return {
    id: r.id,
    kind: r.kind,
    amount: BigInt(r.amount),
    description: r.description,
    metadata: r.metadata,
    createdAt: r.created_at,
  };
}

/** The org's ledger history, newest first. */
export async function listTransactions(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; cursor?: string },
): Promise<Page<LedgerTransactionView>> {
  const after = opts.cursor ? decodeCursor(opts.cursor) : undefined;
  const rows = await transactionsQuery(ctx.sql, {
    orgId: opts.orgId,
    order: "newest",
    beforeSeq: after,
    limit: opts.limit + 1,
  });
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map(toTransactionView),
    nextCursor: rows.length > opts.limit && last ? encodeCursor(last.seq) : null,
  };
}
