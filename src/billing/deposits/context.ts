import type { ChainClient } from "../../chain/client.js";
import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import type { BillingContext } from "../context.js";

/**
 * The context of the HUSD deposit verbs: a billing context with the chain and the chain settings.
 * Their decisions open their own transactions (a deposit is decided under its row's lock), so
 * `sql` is a client, never a caller's transaction.
 */
export type DepositContext = Omit<BillingContext, "sql"> & { sql: Sql; chain: ChainClient; config: Config };

/** Verbs that only need the chain when the answer is not in PostgreSQL yet (a deposit address). */
export type MaybeChainContext = Omit<BillingContext, "sql"> & {
  sql: Sql;
  config: Config;
  chain?: ChainClient | undefined;
};
