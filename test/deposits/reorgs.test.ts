import { depositContext } from "../support/context.js";
import { maxUint256, type Address, type Hex } from "viem";
import { describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { DevRoles, devAccounts, mintHusd } from "../../src/chain/local-devnet.js";
import { depositMovements, expectDepositInvariants } from "../support/deposit-invariants.js";
import type { DepositStack } from "../support/deposit-stack.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { deployMultiSend, multiSendAbi } from "../support/multisend.js";
import { chainReorg } from "../support/reorg.js";
import type { TestApp } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

type Reorgs = {
  reorg: ReturnType<typeof chainReorg>;
  multisend: Address;
  deps(): DepositContext;
  topup(orgKey: string, hash: Hex): ReturnType<TestApp["call"]>;
  workersRun(): Promise<void>;
  depositsOf(orgKey: string, hash: Hex): ReturnType<DepositStack["deposits"]>;
  payout(to: Address[], amounts: bigint[]): Promise<{ hash: Hex; block: bigint }>;
};

/** `reorgs`: reorgs on the file's chain, MultiSend deployed on it, and the deposit steps the workers would take. */
const it = chainTest.extend<{ reorgs: Reorgs }>({
  reorgs: [
    async ({ db, chain, stack }, use) => {
      const reorg = chainReorg(chain);
      const multisend = await deployMultiSend(chain);
      const deps = () => depositContext(db.sql, stack.chainClient, stack.app.config);
      const topup = (orgKey: string, hash: Hex) =>
        stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } });
      /** What the workers do on their own (the audit, then a check of every undecided deposit), run once, in order. */
      async function workersRun() {
        await auditCreditedDeposits(deps());
        const pending = await db.sql<
          { id: string }[]
        >`select id from husd_deposits where state in ('seen', 'confirming') order by seen_at`;
        for (const { id } of pending) await verifyDeposit(deps(), { depositId: id });
      }
      const depositsOf = async (orgKey: string, hash: Hex) =>
        (await stack.deposits(orgKey)).filter((d) => d.tx_hash === hash);

      /** A payout sent through MultiSend by the customer: several HUSD transfers in one transaction. */
      async function payout(to: Address[], amounts: bigint[]): Promise<{ hash: Hex; block: bigint }> {
        const customer = chain.clients.wallet(DevRoles.customer);
        const total = amounts.reduce((a, b) => a + b, 0n);
        await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, total);
        await customer.waitForTransactionReceipt({
          hash: await customer.writeContract({
            address: chain.husd,
            abi: husdAbi,
            functionName: "approve",
            args: [multisend, total],
          }),
        });
        const hash = await customer.writeContract({
          address: multisend,
          abi: multiSendAbi,
          functionName: "send",
          args: [chain.husd, to, amounts],
        });
        return { hash, block: (await customer.waitForTransactionReceipt({ hash })).blockNumber };
      }
      await use({ reorg, multisend, deps, topup, workersRun, depositsOf, payout });
    },
    { scope: "file" },
  ],
});

/**
 * Reorgs deeper than the finality policy, after the credit: the case finality should make
 * impossible, and the one where a wrong identity or a reused key silently moves money.
 */
describe("HUSD deposits across deep reorgs: identity by content, one credit per canonical appearance", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("a credited transaction re-mined behind another log-emitting transaction (log indexes 0,1,2 → 1,2,3): each org keeps exactly its own credit", async ({
    db,
    chain,
    stack,
    reorgs: { reorg, topup, workersRun, depositsOf, payout },
  }) => {
    const a = await stack.orgWithAddress("Shift A");
    const b = await stack.orgWithAddress("Shift B");
    // Two identical transfers to A (told apart by their order only) and one to B.
    const { hash, block } = await payout([a.address, b.address, a.address], [5n * HUSD, 7n * HUSD, 5n * HUSD]);
    expect((await topup(a.orgKey, hash)).json.deposits).toHaveLength(2);
    expect((await topup(b.orgKey, hash)).json.deposits).toHaveLength(1);
    await reorg.mineUntilFinal(block);
    await workersRun();
    expect([await stack.balanceNano(a.orgKey), await stack.balanceNano(b.orgKey)]).toEqual([10n * USD, 7n * USD]);
    const before = (
      await db.sql<
        { id: string; log_index: number }[]
      >`select id, log_index from husd_deposits where tx_hash = ${hash} order by log_index`
    ).map((r) => r.log_index);
    expect(before).toEqual([0, 1, 2]);

    // A reorg deeper than the policy: the same signed transaction is mined again, now behind a
    // mint in the same block, so every one of its logs moves up by one.
    const raw = await reorg.raw(hash);
    const mint = await reorg.signedMint("0x00000000000000000000000000000000000000bb", 1n);
    await reorg.replaceFrom(block, [mint, raw]);
    const moved = await chain.clients.test.getTransactionReceipt({ hash });
    expect(
      moved.logs.filter((l) => l.address.toLowerCase() === chain.husd.toLowerCase()).map((l) => l.logIndex),
    ).toEqual([1, 2, 3]);
    await reorg.mineUntilFinal(moved.blockNumber);

    await workersRun();
    // The orgs (or the indexer) report the transaction again: still the same three deposits.
    await topup(a.orgKey, hash);
    await topup(b.orgKey, hash);
    await workersRun();

    expect(await stack.balanceNano(a.orgKey)).toBe(10n * USD);
    expect(await stack.balanceNano(b.orgKey)).toBe(7n * USD);
    const rows =
      await db.sql`select to_address, amount_nano_usd, state, log_index, block_hash from husd_deposits where tx_hash = ${hash} order by log_index`;
    expect(rows.map((r) => [r.state, r.log_index, r.block_hash])).toEqual(
      [1, 2, 3].map((i) => ["credited", i, moved.blockHash.toLowerCase()]),
    );
    // Its new block was final when the move was found: the credits stand, nothing moved twice.
    for (const d of [...(await depositsOf(a.orgKey, hash)), ...(await depositsOf(b.orgKey, hash))]) {
      expect((await depositMovements(db.sql, d.id)).map(([k]) => k)).toEqual(["husd_deposit"]);
    }
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("credited → reorged out (reversed) → the same signed transaction mined again → credited again, the same amount; the ledger shows all three steps", async ({
    db,
    stack,
    reorgs: { reorg, topup, workersRun, depositsOf },
  }) => {
    const org = await stack.orgWithAddress("Again Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 5n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await reorg.mineUntilFinal(blockNumber);
    await workersRun();
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);

    const raw = await reorg.raw(hash);
    await reorg.replaceFrom(blockNumber); // gone: the new blocks do not hold it
    await workersRun();
    expect((await depositsOf(org.orgKey, hash)).map((d) => [d.id, d.state])).toEqual([[id, "reversed"]]);
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);

    await reorg.resend(raw);
    await reorg.mineUntilFinal(await reorg.blockOf(hash));
    const again = await topup(org.orgKey, hash);
    expect(again.json.deposits.map((d: { id: string }) => d.id)).toEqual([id]); // the same deposit, seen again
    await workersRun();
    expect((await depositsOf(org.orgKey, hash)).map((d) => [d.id, d.state])).toEqual([[id, "credited"]]);
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);
    expect(await depositMovements(db.sql, id)).toEqual([
      ["husd_deposit", 5n * USD],
      ["reversal", -5n * USD],
      ["husd_deposit", 5n * USD],
    ]);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("re-mined with a different amount (1 HUSD instead of 150): the old credit is reversed and the new amount credited", async ({
    db,
    chain,
    stack,
    reorgs: { reorg, multisend, topup, workersRun, depositsOf },
  }) => {
    const org = await stack.orgWithAddress("Amount Co");
    const payer = devAccounts[5]!;
    const wallet = chain.clients.wallet(payer);
    await wallet.waitForTransactionReceipt({
      hash: await wallet.writeContract({
        address: chain.husd,
        abi: husdAbi,
        functionName: "approve",
        args: [multisend, maxUint256],
      }),
    });
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, payer.address, 1n * HUSD);
    const topUpBlock = (await chain.clients.test.getBlockNumber({ cacheTime: 0 })) + 1n;
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, payer.address, 149n * HUSD);
    // "Send everything I have": 150 HUSD here, whatever the payer holds wherever it is mined.
    const hash = await wallet.writeContract({
      address: multisend,
      abi: multiSendAbi,
      functionName: "sendAll",
      args: [chain.husd, org.address],
    });
    const { blockNumber } = await wallet.waitForTransactionReceipt({ hash });
    const [first] = (await topup(org.orgKey, hash)).json.deposits;
    expect(first.amount_nano_usd).toBe((150n * USD).toString());
    await reorg.mineUntilFinal(blockNumber);
    await workersRun();
    expect(await stack.balanceNano(org.orgKey)).toBe(150n * USD);

    // The new chain has no 149 HUSD mint: the same signed transaction now moves 1 HUSD.
    const raw = await reorg.raw(hash);
    await reorg.replaceFrom(topUpBlock, [raw]);
    await reorg.mineUntilFinal(await reorg.blockOf(hash));
    await workersRun();
    await topup(org.orgKey, hash);
    await workersRun();

    const deposits = await depositsOf(org.orgKey, hash);
    const byAmount = Object.fromEntries(deposits.map((d) => [d.amount_nano_usd, d]));
    expect(byAmount[(150n * USD).toString()]?.state).toBe("reversed");
    expect(byAmount[(1n * USD).toString()]?.state).toBe("credited");
    expect(deposits).toHaveLength(2);
    expect(await stack.balanceNano(org.orgKey)).toBe(1n * USD);
    expect(await depositMovements(db.sql, first.id)).toEqual([
      ["husd_deposit", 150n * USD],
      ["reversal", -150n * USD],
    ]);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("a credited transaction re-mined into a block not yet final: its credit is reversed until that block is final, then credited again", async ({
    db,
    stack,
    reorgs: { reorg, topup, workersRun, depositsOf },
  }) => {
    const org = await stack.orgWithAddress("Pending Move Co");
    const { hash, blockNumber } = await stack.sendHusd(org.address, 4n * HUSD);
    const id = (await topup(org.orgKey, hash)).json.deposits[0].id as string;
    await reorg.mineUntilFinal(blockNumber);
    await workersRun();
    expect(await stack.balanceNano(org.orgKey)).toBe(4n * USD);

    const raw = await reorg.raw(hash);
    const depth = Number((await reorg.head()) - blockNumber + 1n);
    await reorg.replaceFrom(blockNumber, [raw], depth - 1); // into the newest block: not final
    await workersRun();
    const [moved] = await depositsOf(org.orgKey, hash);
    expect(moved).toMatchObject({ id, state: "confirming" });
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);

    await reorg.mineUntilFinal(await reorg.blockOf(hash));
    await workersRun();
    expect((await depositsOf(org.orgKey, hash))[0]).toMatchObject({ id, state: "credited" });
    expect(await stack.balanceNano(org.orgKey)).toBe(4n * USD);
    expect((await depositMovements(db.sql, id)).map(([k]) => k)).toEqual(["husd_deposit", "reversal", "husd_deposit"]);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });
});
