import type { TransactionSql } from "../../db/client.js";
import type { EventType } from "./catalog.js";

/**
 * Writes the event of a fact into the outbox (billing_events), in the transaction that makes the
 * fact: call it with that transaction, so the event commits or rolls back with it. `factKey`
 * identifies the fact within its type (e.g. the top-up's id): a second call for the same fact, in
 * a retry or a racing transaction, writes nothing. Returns the event id, or null when the fact
 * already had its event. The payload must hold nothing secret (keys, card data, processor ids):
 * customers receive it as it is. Facts made in SQL use emit_event() (src/db/functions/events.sql).
 */
export async function emitEvent(
  tx: TransactionSql,
  event: { orgId: string; type: EventType; factKey: string; data: Record<string, unknown>; at: Date },
): Promise<string | null> {
  const [row] = await tx<{ id: string | null }[]>`
    select emit_event(${event.orgId}, ${event.type}, ${event.factKey}, ${tx.json(event.data as never)}, ${event.at}) as id`;
  return row?.id ?? null;
}
