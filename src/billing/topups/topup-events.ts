import type { TransactionSql } from "../../db/client.js";
import { usdFields } from "../../ledger/money.js";
import { emitEvent } from "../events/emit.js";
import { centsToNanoUsd } from "../payments/card-payment.js";

/**
 * `topup.succeeded` / `topup.failed` for a card top-up started here (card_checkouts), in the
 * transaction of the fact, once per top-up (its id is the fact key). No card or processor details.
 */
export async function emitTopupEvent(
  tx: TransactionSql,
  e: {
    type: "topup.succeeded" | "topup.failed";
    topupId: string;
    orgId: string;
    amountCents: bigint;
    at: Date;
    failure?: string;
  },
): Promise<void> {
  await emitEvent(tx, {
    orgId: e.orgId,
    type: e.type,
    factKey: e.topupId,
    data: {
      topup_id: e.topupId,
      ...usdFields("amount", centsToNanoUsd(e.amountCents)),
      ...(e.type === "topup.failed" ? { failure_message: e.failure ?? null } : {}),
    },
    at: e.at,
  });
}
