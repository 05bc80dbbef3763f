import { decodeCursor, encodeCursor, type Page } from "../transactions.js";
import type { BillingContext } from "../context.js";
import type { EventType } from "./catalog.js";

export type BillingEvent = {
  id: string;
  type: string;
  data: Record<string, unknown>;
  createdAt: Date;
};

/** The org's event log, newest first (by commit-independent sequence), optionally of some types. */
export async function listEvents(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; cursor?: string; types?: EventType[] },
): Promise<Page<BillingEvent>> {
  const { sql } = ctx;
  const before = opts.cursor ? decodeCursor(opts.cursor) : null;
  const types = opts.types?.length ? opts.types : null;
  const rows = await sql<{ id: string; seq: bigint; type: string; data: Record<string, unknown>; created_at: Date }[]>`
    select id, seq, type, data, created_at from billing_events
    where org_id = ${opts.orgId}
      ${types ? sql`and type in ${sql(types)}` : sql``}
      ${before !== null ? sql`and seq < ${before.toString()}` : sql``}
    order by seq desc
    limit ${opts.limit + 1}`;
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map((r) => ({ id: r.id, type: r.type, data: r.data, createdAt: r.created_at })),
    nextCursor: rows.length > opts.limit && last ? encodeCursor(last.seq) : null,
  };
}

/** One event as customers see it, in the event log and as a webhook's body. */
export function eventEnvelope(e: { id: string; type: string; data: Record<string, unknown>; createdAt: Date }) {
  return { id: e.id, type: e.type, timestamp: e.createdAt.toISOString(), data: e.data };
}
