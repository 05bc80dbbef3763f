import fc from "fast-check";
import { describe, expect } from "vitest";
import { orgCreditsAccount, SystemAccounts } from "../../../../src/ledger/accounts.js";
import { postTransfer } from "../../../../src/ledger/post-transaction.js";
import { appTest as it } from "../../../support/fixtures.js";
import { appearedBelowKnown } from "../../../support/polling.js";
import { waitFor } from "../../../support/process.js";

/**
 * The transaction list pages newest first by seq, so for one organization seq must follow commit
 * order (ledger_transactions_seq_in_commit_order, src/db/functions/ledger.sql): a transaction that
 * commits after a client read the list must never land below what the client saw, or a client that
 * syncs by reading until the first id it knows misses it for ever.
 */
describe("GET /v1/billing/transactions: an organization's transactions are listed in the order they committed", () => {
  type Listed = { id: string; amount_nano_usd: string };
  const USD = 1_000_000_000n;

  it("a grant that waited for the organization's lock is listed above the transaction that held it", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    await app.grant(a.id, "1", "before");
    let waiting: Promise<unknown> | undefined;
    await db.sql.begin(async (tx) => {
      // A writer of A's money in flight (as a metering batch is): it holds A's credits account.
      await tx`select 1 from ledger_accounts where id = ${orgCreditsAccount(a.id)} for update`;
      waiting = app.grant(a.id, "2", "waits");
      await waitFor(
        async () =>
          (
            await db.sql<{ n: number }[]>`
              select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`
          )[0]!.n > 0,
        { timeoutMs: 30_000 },
      );
      // The writer in flight posts its own transaction of A, then commits: before the grant can.
      await postTransfer(tx, {
        kind: "grant",
        orgId: a.id,
        idempotencyKey: `${a.id}:holder`,
        description: "the lock holder",
        from: SystemAccounts.grants,
        to: orgCreditsAccount(a.id),
        amount: 3n * USD,
      });
    });
    await waiting;

    const list = await app.call("GET", "/v1/billing/transactions?limit=10", { key: a.orgKey });
    expect(list.status).toBe(200);
    // Newest first means the last to commit first: the grant that waited, then the holder's.
    expect(list.json.data.map((t: Listed) => BigInt(t.amount_nano_usd) / USD)).toEqual([2n, 3n, 1n]);
  });

  it("generated: a reader polling the list while grants and usage batches race never sees a transaction appear below one it saw", async ({
    app,
  }) => {
    const a = await app.createOrg("A");
    await app.grant(a.id, "1000", "funding");
    let n = 0;
    const grant = () => app.grant(a.id, "1", `g-${++n}`);
    const usage = () =>
      app.call("POST", "/v1/billing/usage", {
        key: a.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: `u-${++n}`,
              org_id: a.id,
              timestamp: new Date().toISOString(),
              product: "llm",
              model: "zen-pro",
              quantities: { input_tokens: 1000, output_tokens: 500 },
            },
          ],
        },
      });
    const newestIds = async (): Promise<string[]> => {
      const res = await app.call("GET", "/v1/billing/transactions?limit=100", { key: a.orgKey });
      expect(res.status).toBe(200);
      return res.json.data.map((t: Listed) => t.id);
    };

    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom("grant", "usage"), { minLength: 4, maxLength: 12 }), async (ops) => {
        // What is new since a poll must all sit above everything that poll showed.
        expect(
          await appearedBelowKnown(newestIds, () => Promise.all(ops.map((op) => (op === "grant" ? grant() : usage())))),
        ).toEqual([]);
      }),
      { numRuns: 15 },
    );
  });
});
