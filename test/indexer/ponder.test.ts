import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { startIndexer, startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { waitFor, type RunningProcess } from "../support/process.js";

describe("Ponder indexer (npm run indexer) against anvil and PostgreSQL", () => {
  let db: TestDatabase;
  let chain: TestChain;
  let indexer: RunningProcess;
  beforeAll(async () => {
    db = await createTestDatabase();
    chain = await startTestChain();
    indexer = await startIndexer(chain, db.appUrl);
  }, 120_000);
  afterAll(async () => {
    await indexer?.stop();
    await chain?.stop();
    await db?.drop();
  });

  it("indexes a HUSD transfer the test sent, exactly, into its views schema", async () => {
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
    await waitFor(
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

  it("has built the index on husd_transfer.to that the deposit scan reads by (test/deposits/scan-plan.test.ts)", async () => {
    const indexes = await db.sql<{ indexdef: string }[]>`
      select indexdef from pg_indexes where schemaname like 'husd\_indexer\_%' and tablename = 'husd_transfer' and indexname = 'husd_transfer_to_index'`;
    expect(indexes).toHaveLength(1);
    expect(indexes[0]!.indexdef).toContain('USING btree ("to")');
  });
});
