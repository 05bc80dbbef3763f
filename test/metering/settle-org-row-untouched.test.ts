import { describe, expect } from "vitest";
import { appTest as it } from "../support/fixtures.js";

// A settle updates its organization's credits account twice in one transaction: `held` by the
// holds' trigger (phase 3 of metering_batch), then `balance` by the ledger entries' (phase 5).
// PostgreSQL checks a foreign key on an update of a row its own transaction wrote, whatever changed,
// so with ledger_accounts.org_id a key, every settle ran a check per organization that also took a
// KEY SHARE lock on the organization's row: a write to that row's header and to the WAL on the
// metering path (migration 0045 made it a check when an account is opened). The row's xmax shows
// such a lock after the locking transaction is gone.
describe("settling a hold", () => {
  it("writes nothing to the organization's row (no key check locks it)", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1000");
    const now = app.clock();
    const hold = await app.metering.authorize(
      {
        orgId: org.id,
        product: "llm",
        model: "zen-pro",
        estimate: { input_tokens: 1000n, output_tokens: 500n },
        idempotencyKey: undefined,
        ttlSeconds: 300,
      },
      now,
    );
    const xmax = async () =>
      (await db.sql<{ xmax: string }[]>`select xmax::text as xmax from organizations where id = ${org.id}`)[0]!.xmax;
    const before = await xmax();
    const usage = await app.metering.recordUsage(
      {
        orgId: org.id,
        idempotencyKey: "settle-1",
        occurredAt: now,
        product: "llm",
        model: "zen-pro",
        quantities: { input_tokens: 900n, output_tokens: 450n },
        holdId: hold.id,
      },
      now,
    );
    expect(usage.holdOutcome).toBe("settled");
    // Both of the account's columns moved in that transaction…
    const [account] = await db.sql<{ balance: bigint; held: bigint }[]>`
      select balance, held from ledger_accounts where org_id = ${org.id} and kind = 'org_credits'`;
    expect(account!.held).toBe(0n);
    expect(account!.balance).toBeLessThan(1000n * 1_000_000_000n);
    // …and the organization's row was not locked by it.
    expect(await xmax()).toBe(before);
  });
});
