import { expect } from "vitest";
import type { Sql } from "../../src/db/client.js";
import { checkLedger } from "../../src/ledger/check.js";

/** Every check of checkLedger passes; on failure the diff shows what it found. */
export async function expectLedgerConsistent(sql: Sql): Promise<void> {
  expect(await checkLedger(sql)).toEqual({ unbalancedTransactions: [], balanceMismatches: [], heldMismatches: [] });
}
