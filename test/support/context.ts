import type { Catalog } from "../../src/billing/catalog.js";
import { at, createBillingContext, type BillingContext } from "../../src/billing/context.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";
import type { ChainClient } from "../../src/chain/client.js";
import type { Clock } from "../../src/clock.js";
import type { Config } from "../../src/config.js";
import type { Sql } from "../../src/db/client.js";

/** A service verbs' context on a test database: the system clock unless given, a silent logger. */
export function testContext(sql: Sql, opts: { clock?: Clock; catalog?: Catalog } = {}): BillingContext {
  return createBillingContext({
    sql,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.catalog ? { catalog: opts.catalog } : {}),
  });
}

/** A test context whose verbs run at `now`. */
export function contextAt(sql: Sql, now: Date, opts: { catalog?: Catalog } = {}): BillingContext {
  return at(testContext(sql, opts), now);
}

/** The deposit verbs' context: a test context with the chain and the app's config. */
export function depositContext(
  sql: Sql,
  chain: ChainClient,
  config: Config,
  opts: { clock?: Clock } = {},
): DepositContext {
  return { ...testContext(sql, opts), sql, chain, config };
}
