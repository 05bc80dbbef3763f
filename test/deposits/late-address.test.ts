import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { depositFactoryAbi } from "../../abis/index.js";
import { depositSalt } from "../../src/billing/deposits/addresses.js";
import { startIndexer, startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { waitFor, type RunningProcess } from "../support/process.js";

const HUSD = 10n ** 18n;

/**
 * The deposit address is a pure function of the org id, so HUSD can reach it before the org ever
 * asked for it (before it is in deposit_addresses). Through the indexer, with no call from the org,
 * such a transfer is credited once the address is registered, even if someone else submitted the
 * transaction as a top-up while the address was still no org's.
 */
describe("a transfer to an address that becomes an org's later, through the indexer", () => {
  let db: TestDatabase;
  let chain: TestChain;
  let indexer: RunningProcess;
  let stack: ReturnType<typeof depositStack>;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 10 });
    chain = await startTestChain({ blockTime: 1 });
    indexer = await startIndexer(chain, db.appUrl);
    stack = depositStack(db, chain);
    await stack.startWorkers();
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
    await indexer?.stop();
    await chain?.stop();
    await db?.drop();
  });

  it("is credited once the org registers its address, whether or not a top-up named it before", {
    timeout: 90_000,
  }, async () => {
    const early = await stack.app.createOrg("Early Payer");
    const meddled = await stack.app.createOrg("Meddled Payer");
    const predict = (orgId: string) =>
      chain.clients.test.readContract({
        address: chain.factory,
        abi: depositFactoryAbi,
        functionName: "predictAddress",
        args: [depositSalt(orgId)],
      });
    const toEarly = await stack.sendHusd(await predict(early.id), 4n * HUSD);
    const toMeddled = await stack.sendHusd(await predict(meddled.id), 6n * HUSD);
    // Another org submits the second transaction while its recipient is still no org's.
    const meddler = await stack.orgWithAddress("Meddler");
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", {
      key: meddler.orgKey,
      body: { tx_hash: toMeddled.hash },
    });
    expect(res.json.error.code).toBe("no_deposit_in_transaction");

    // Both transfers are indexed and final, and nothing credits them: the addresses are no org's yet.
    await waitFor(
      async () =>
        (
          await db.sql`select count(*)::int as n from husd_indexer.husd_transfer where transaction_hash = any(${[toEarly.hash, toMeddled.hash]})`
        )[0]!.n === 2,
      {
        timeoutMs: 30_000,
        what: "both transfers indexed",
      },
    );
    expect(await stack.balanceNano(early.orgKey)).toBe(0n);

    for (const org of [early, meddled])
      expect((await stack.app.call("GET", "/v1/billing/husd/deposit-address", { key: org.orgKey })).status).toBe(200);
    await waitFor(
      async () =>
        (await stack.balanceNano(early.orgKey)) === 4_000_000_000n &&
        (await stack.balanceNano(meddled.orgKey)) === 6_000_000_000n,
      {
        timeoutMs: 30_000,
        what: "both credited after registration",
      },
    );
  });
});
