import { beforeEach, describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { type ChainContext, chainTest as it } from "../support/chain-fixtures.js";

describe("Ponder indexer (npm run indexer) against anvil and PostgreSQL", () => {
  // Ponder runs for the whole file: started (and waited on) before the first test.
  beforeEach<ChainContext>(async ({ indexer }) => {
    await indexer.waitFor(async () => (await fetch(`http://127.0.0.1:${indexer.port}/ready`)).ok, {
      what: "ponder ready",
    });
  }, 150_000);

  it("indexes a HUSD transfer the test sent, exactly, into its views schema", async ({ db, chain, indexer }) => {
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, 5n * 10n ** 18n);
    const wallet = chain.clients.wallet(DevRoles.customer);
    const to = "0x00000000000000000000000000000000000000aa";
    const hash = await wallet.writeContract({
      address: chain.husd,
      abi: husdAbi,
      functionName: "transfer",
      args: [to, 1234567890123456789n],
    });
    const receipt = await wallet.waitForTransactionReceipt({ hash });
    await indexer.waitFor(
      async () =>
        (await db.sql`select 1 from husd_indexer.husd_transfer where transaction_hash = ${hash}`).length === 1,
      { timeoutMs: 30_000, what: "transfer indexed" },
    );
    const [row] = await db.sql`select * from husd_indexer.husd_transfer where transaction_hash = ${hash}`;
    expect(row).toMatchObject({
      chain_id: chain.chainId,
      token_address: chain.husd.toLowerCase(),
      from: DevRoles.customer.address.toLowerCase(),
      to,
      amount: "1234567890123456789",
      block_number: receipt.blockNumber.toString(),
      block_hash: receipt.blockHash,
      log_index: receipt.logs[0]!.logIndex,
    });
  });

  it("has built the index on husd_transfer.to that the deposit scan reads by (test/deposits/scan-plan.test.ts)", async ({
    db,
  }) => {
    const indexes = await db.sql<{ indexdef: string }[]>`
      select indexdef from pg_indexes where schemaname like 'husd\_indexer\_%' and tablename = 'husd_transfer' and indexname = 'husd_transfer_to_index'`;
    expect(indexes).toHaveLength(1);
    expect(indexes[0]!.indexdef).toContain('USING btree ("to")');
  });
});
