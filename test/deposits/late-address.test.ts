import { afterEach, beforeEach, describe, expect } from "vitest";
import { depositFactoryAbi } from "../../abis/index.js";
import { depositSalt } from "../../src/billing/deposits/addresses.js";
import { type ChainContext, chainTest as it } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

/**
 * The deposit address is a pure function of the org id, so HUSD can reach it before the org ever
 * asked for it (before it is in deposit_addresses). Through the indexer, with no call from the org,
 * such a transfer is credited once the address is registered, even if someone else submitted the
 * transaction as a top-up while the address was still no org's.
 */
describe("a transfer to an address that becomes an org's later, through the indexer", () => {
  it.scoped({ dbOptions: { max: 10 }, chainOptions: { blockTime: 1 } });
  // Ponder is up before the workers start (they read its views); both start before the first test.
  beforeEach<ChainContext>(async ({ indexer, stack }) => {
    await indexer.waitFor(async () => (await fetch(`http://127.0.0.1:${indexer.port}/ready`)).ok, {
      what: "ponder ready",
    });
    await stack.startWorkers();
  }, 150_000);
  afterEach<ChainContext>(({ stack }) => stack.stopWorkers());

  it("is credited once the org registers its address, whether or not a top-up named it before", {
    timeout: 90_000,
  }, async ({ db, chain, stack, indexer }) => {
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
    await indexer.waitFor(
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
    await indexer.waitFor(
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
