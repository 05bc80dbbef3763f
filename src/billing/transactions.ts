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

/** The org's ledger history, newest first. */
export async function listTransactions(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; cursor?: string },
): Promise<Page<LedgerTransactionView>> {
  const { sql } = ctx;
  const { orgId } = opts;
  const after = opts.cursor ? decodeCursor(opts.cursor) : null;
  const rows = await sql<
    {
      id: string;
      seq: bigint;
      kind: string;
      amount: string;
      description: string | null;
      metadata: Record<string, unknown>;
      created_at: Date;
    }[]
  >`
    select t.id, t.seq, t.kind, t.description, t.metadata, t.created_at,
      (select coalesce(sum(e.amount), 0)::text from ledger_entries e
        join ledger_accounts a on a.id = e.account_id
        where e.transaction_id = t.id and a.org_id = ${orgId}) as amount
    from ledger_transactions t
    where t.org_id = ${orgId}
      ${after !== null ? sql`and t.seq < ${after.toString()}` : sql``}
    order by t.seq desc
    limit ${opts.limit + 1}`;
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map((r) => ({
      id: r.id,
      kind: r.kind,
      amount: BigInt(r.amount),
      description: r.description,
      metadata: r.metadata,
      createdAt: r.created_at,
    })),
    nextCursor: rows.length > opts.limit && last ? encodeCursor(last.seq) : null,
  };
}
