import { parseAbi, type Address } from "viem";
import { afterEach, describe, expect } from "vitest";
import { depositFactoryAbi, husdAbi, husdBytecode } from "../../abis/index.js";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient } from "../../src/chain/client.js";
import { DevRoles } from "../../src/chain/local-devnet.js";
import { enqueueDepositChecks } from "../../src/jobs/enqueue.js";
import { startTestChain } from "../support/chain-stack.js";
import { type ChainContext, chainTest as it } from "../support/chain-fixtures.js";
import { type DepositStack, depositStack } from "../support/deposit-stack.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { deployMultiSend } from "../support/multisend.js";
import { waitFor } from "../support/process.js";
import { clearRedisPrefix } from "../support/redis.js";
import { depositContext } from "../support/context.js";

const HUSD = 10n ** 18n;

describe("HUSD top-ups: verify-and-record, finality, exactly-once credit, reorgs", () => {
  it.scoped({ dbOptions: { max: 12 } });
  afterEach<ChainContext>(({ stack }) => stack.stopWorkers());

  const topup = (stack: DepositStack, orgKey: string, hash: string) =>
    stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } });
  const stateOf = async (stack: DepositStack, orgKey: string, id: string) =>
    (await stack.deposits(orgKey)).find((d) => d.id === id);

  it("gives each org a CREATE2 deposit address that the factory predicts and later deploys to", async ({
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress();
    const onChain = await chain.clients.test.readContract({
      address: chain.factory,
      abi: depositFactoryAbi,
      functionName: "predictAddress",
      args: [org.salt],
    });
    expect(org.address).toBe(onChain);
    const again = await stack.app.call("GET", "/v1/billing/husd/deposit-address", { key: org.orgKey });
    expect(again.json).toMatchObject({
      address: org.address,
      chain_id: chain.chainId,
      token_address: chain.husd,
      token_decimals: 18,
    });
    expect(again.json.finality).toContain("finalized");
    expect(await chain.clients.test.getCode({ address: org.address })).toBeUndefined(); // nothing deployed yet
  });

  it("records a transfer by hash, waits for finality and credits it once, exactly", async ({ db, chain, stack }) => {
    const org = await stack.orgWithAddress();
    const before = await stack.balanceNano(org.orgKey);
    const { hash } = await stack.sendHusd(org.address, 12n * HUSD + 345_678_901_234_567_891n); // 12.345678901234567891 HUSD
    const first = await topup(stack, org.orgKey, hash);
    expect(first.status).toBe(201);
    expect(first.json.deposits).toHaveLength(1);
    const d = first.json.deposits[0];
    expect(d).toMatchObject({
      state: "seen",
      amount_base_units: "12345678901234567891",
      amount_husd: "12.345678901234567891",
      amount_nano_usd: "12345678901",
    });
    const replay = await topup(stack, org.orgKey, hash);
    expect(replay.status).toBe(200);
    expect(replay.json.deposits[0].id).toBe(d.id);

    await stack.startWorkers();
    // Not final yet: needs 3 confirmations and the finalized tag (2 blocks behind) past its block.
    await waitFor(async () => (await stateOf(stack, org.orgKey, d.id))?.state === "confirming", { what: "confirming" });
    expect(await stack.balanceNano(org.orgKey)).toBe(before);
    await chain.mine(3);
    await waitFor(async () => (await stateOf(stack, org.orgKey, d.id))?.state === "credited", { what: "credited" });
    expect((await stack.balanceNano(org.orgKey)) - before).toBe(12_345_678_901n);
    const history = (await stack.app.call("GET", "/v1/billing/transactions", { key: org.orgKey })).json.data;
    expect(history[0]).toMatchObject({ kind: "husd_deposit", amount_nano_usd: "12345678901" });
    await expectLedgerConsistent(db.sql);
  });

  it("duplicate jobs, racing verifiers and re-runs after the credit all credit once", async ({ db, chain, stack }) => {
    const org = await stack.orgWithAddress();
    const { hash } = await stack.sendHusd(org.address, 3n * HUSD);
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    await chain.mine(5);
    const deps = depositContext(db.appSql, stack.chainClient, stack.app.config);
    // As if several workers (or a worker killed after committing, whose job is retried) ran it.
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => verifyDeposit(deps, { depositId: id })));
    expect(outcomes.every((o) => o.state === "credited")).toBe(true);
    const workers = await stack.startWorkers();
    await enqueueDepositChecks(workers.queues, [id, id, id]);
    await new Promise((r) => setTimeout(r, 600));
    const rows =
      await db.sql`select count(*)::int as n from ledger_transactions where kind = 'husd_deposit' and org_id = ${org.id}`;
    expect(rows[0]!.n).toBe(1);
    expect(await stack.balanceNano(org.orgKey)).toBe(3_000_000_000n);
  });

  it("Redis is only a carrier: flushed mid-flow, pending deposits are found again from PostgreSQL and credited once", async ({
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress();
    const { hash } = await stack.sendHusd(org.address, 2n * HUSD);
    const workers = await stack.startWorkers();
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    await enqueueDepositChecks(workers.queues, [id]);
    await stack.stopWorkers();
    await clearRedisPrefix(stack.redis, `{${stack.prefix}}`); // every job and scheduler gone
    await chain.mine(5);
    await stack.startWorkers();
    await waitFor(async () => (await stateOf(stack, org.orgKey, id))?.state === "credited", {
      what: "credited after flush",
    });
    expect(await stack.balanceNano(org.orgKey)).toBe(2_000_000_000n);
  });

  it("a scheduler lost under running workers (a failed-over master's last writes, a flush) is declared again: the scan resumes", async ({
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress();
    const workers = await stack.startWorkers({ schedulersEveryMs: 500 });
    const { hash } = await stack.sendHusd(org.address, 3n * HUSD);
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    await waitFor(async () => (await stateOf(stack, org.orgKey, id))?.state === "confirming", { what: "confirming" });
    // The scan's scheduler and its next iteration gone, as the workers run: only the scan would
    // check the deposit again once its block is final.
    await workers.queues.maintenance.removeJobScheduler("scan-deposits");
    await chain.mine(5);
    // A scan already started before the removal may credit it first, so wait on each in turn.
    await waitFor(async () => (await workers.queues.maintenance.getJobScheduler("scan-deposits")) !== undefined, {
      what: "the scan's scheduler declared again",
    });
    await waitFor(async () => (await stateOf(stack, org.orgKey, id))?.state === "credited", {
      what: "credited by a scan after the scheduler came back",
    });
    expect(await workers.queues.maintenance.getJobScheduler("scan-deposits")).toMatchObject({ every: 200 });
    expect(await stack.balanceNano(org.orgKey)).toBe(3_000_000_000n);
  });

  it("a reorg before finality orphans the deposit: never credited", async ({ chain, stack }) => {
    const org = await stack.orgWithAddress();
    await stack.startWorkers();
    const { hash } = await stack.sendHusd(org.address, 7n * HUSD);
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    await waitFor(async () => (await stateOf(stack, org.orgKey, id))?.state === "confirming", { what: "confirming" });
    // Replace the last two blocks (the transfer's among them) with empty ones.
    await chain.clients.test.request({ method: "anvil_reorg" as never, params: [2, []] as never });
    await chain.mine(6);
    await waitFor(async () => (await stateOf(stack, org.orgKey, id))?.state === "orphaned", { what: "orphaned" });
    expect((await stateOf(stack, org.orgKey, id))?.reason).toMatch(/reorged_out|log_mismatch/);
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);
  });

  it("credits wait while the finalized tag does not advance, whatever the confirmations", async ({ db }) => {
    const stuck = await startTestChain({ slotsInAnEpoch: 1000 }); // finalized stays at genesis for 2,000 blocks
    const s = depositStack(db, stuck);
    try {
      const org = await s.orgWithAddress("Stuck Co");
      const { hash } = await s.sendHusd(org.address, HUSD);
      const id = (await s.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } }))
        .json.deposits[0].id;
      await stuck.mine(50);
      const deps = depositContext(db.appSql, s.chainClient, s.app.config);
      const outcome = await verifyDeposit(deps, { depositId: id });
      expect(outcome.state).toBe("confirming");
      expect(outcome.confirmations).toBeGreaterThanOrEqual(50n);
      expect(await s.balanceNano(org.orgKey)).toBe(0n);
    } finally {
      await s.close();
      await stuck.stop();
    }
  });

  it("a credited deposit later found off the canonical chain is reversed in the ledger and raised to operators", async ({
    db,
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress();
    const { hash } = await stack.sendHusd(org.address, 4n * HUSD);
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    await chain.mine(4);
    const loose = { ...stack.app.config, FINALITY_CONFIRMATIONS: 1, FINALITY_REQUIRE_FINALIZED_TAG: false };
    expect((await verifyDeposit(depositContext(db.appSql, stack.chainClient, loose), { depositId: id })).state).toBe(
      "credited",
    );
    await db.sql`update organizations set low_balance_threshold = 2000000000 where id = ${org.id}`; // 2 USD: the reversal crosses it
    await chain.clients.test.request({ method: "anvil_reorg" as never, params: [6, []] as never }); // deeper than the policy assumed
    const audit = await auditCreditedDeposits(depositContext(db.appSql, stack.chainClient, stack.app.config));
    expect(audit.reversed).toBe(1);
    expect((await stateOf(stack, org.orgKey, id))?.state).toBe("reversed");
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);
    const alerts = await db.sql`select kind from operator_alerts where subject = ${id}`;
    expect(alerts.map((a) => a.kind)).toEqual(["husd_deposit_reversed"]);
    const lowBalance =
      await db.sql`select a.balance, t.kind from balance_alerts a join ledger_transactions t on t.id = a.transaction_id where a.org_id = ${org.id}`;
    expect(lowBalance).toEqual([{ balance: 0n, kind: "reversal" }]);
    expect((await auditCreditedDeposits(depositContext(db.appSql, stack.chainClient, stack.app.config))).reversed).toBe(
      0,
    );
    await expectLedgerConsistent(db.sql);
  });

  it("rejects, with a reason, a second ERC-20 with the same ABI, dust, and an amount near 2^256-1", async ({
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress();
    const wallet = chain.clients.wallet();
    const deployed = await wallet.waitForTransactionReceipt({
      hash: await wallet.deployContract({ abi: husdAbi, bytecode: husdBytecode, args: [DevRoles.deployer.address] }),
    });
    const fake = deployed.contractAddress!;
    const foreign = await stack.sendHusd(org.address, 100n * HUSD, fake);
    const dust = await stack.sendHusd(org.address, 1_000n);
    const huge = 2n ** 256n - 1n - 100n * HUSD; // the rest of uint256 after the earlier mint of this token
    const max = await stack.sendHusd(org.address, huge, fake).catch(() => null);
    const bigHusd = await stack.sendHusd(org.address, 2n ** 255n);
    for (const h of [foreign.hash, dust.hash, bigHusd.hash, ...(max ? [max.hash] : [])])
      expect([200, 201]).toContain((await topup(stack, org.orgKey, h)).status);
    const deposits = await stack.deposits(org.orgKey);
    const byHash = (h: string) => deposits.find((d) => d.tx_hash === h)!;
    expect(byHash(foreign.hash)).toMatchObject({ state: "rejected", reason: expect.stringMatching(/^wrong_token/) });
    expect(byHash(dust.hash)).toMatchObject({
      state: "rejected",
      reason: expect.stringMatching(/^below_dust_minimum/),
    });
    expect(byHash(bigHusd.hash)).toMatchObject({
      state: "rejected",
      reason: expect.stringMatching(/^amount_exceeds_ledger_range/),
      amount_base_units: (2n ** 255n).toString(),
    });
    await chain.mine(5);
    await stack.startWorkers();
    await new Promise((r) => setTimeout(r, 800));
    expect(await stack.balanceNano(org.orgKey)).toBe(0n);
  });

  it("a hash without a transfer to the org's address is a clear 4xx; an unknown hash too", async ({ db, stack }) => {
    const org = await stack.orgWithAddress();
    const other = await stack.sendHusd("0x00000000000000000000000000000000000000bb", HUSD);
    const res = await topup(stack, org.orgKey, other.hash);
    expect(res.status).toBe(422);
    expect(res.json.error.code).toBe("no_deposit_in_transaction");
    expect(res.json.error.message).toContain(org.address);
    // Nothing is stored for a transfer to an address that is no org's (topup-abuse.test.ts says why).
    expect(await db.sql`select id from husd_deposits where tx_hash = ${other.hash}`).toHaveLength(0);
    const unknown = await topup(stack, org.orgKey, `0x${"ab".repeat(32)}`);
    expect(unknown.status).toBe(422);
    expect(unknown.json.error.code).toBe("transaction_not_found");
    const malformed = await topup(stack, org.orgKey, "0x1234");
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.param).toBe("tx_hash");
  });

  it("one transaction with several transfers to two orgs: each org records and is credited its own", async ({
    chain,
    stack,
  }) => {
    const a = await stack.orgWithAddress("Multi A");
    const b = await stack.orgWithAddress("Multi B");
    const multisend = await deployMultiSend(chain);
    const customer = chain.clients.wallet(DevRoles.customer);
    await stack.sendHusd(DevRoles.customer.address, 10n * HUSD); // mint to the customer
    await customer.waitForTransactionReceipt({
      hash: await customer.writeContract({
        address: chain.husd,
        abi: husdAbi,
        functionName: "approve",
        args: [multisend, 10n * HUSD],
      }),
    });
    const hash = await customer.writeContract({
      address: multisend,
      abi: parseAbi(["function send(address token, address[] to, uint256[] amounts)"]),
      functionName: "send",
      args: [chain.husd, [a.address, b.address, a.address], [1n * HUSD, 2n * HUSD, 3n * HUSD]],
    });
    await customer.waitForTransactionReceipt({ hash });
    const ra = await topup(stack, a.orgKey, hash);
    const rb = await topup(stack, b.orgKey, hash);
    expect(ra.json.deposits).toHaveLength(2);
    expect(rb.json.deposits).toHaveLength(1);
    await chain.mine(5);
    await stack.startWorkers();
    await waitFor(
      async () =>
        (await stack.balanceNano(a.orgKey)) === 4_000_000_000n &&
        (await stack.balanceNano(b.orgKey)) === 2_000_000_000n,
      { what: "both credited" },
    );
  });

  it("a sweep out of a deposit address to the treasury is not a debit of the org", async ({ chain, stack }) => {
    const org = await stack.orgWithAddress("Swept Co");
    const { hash } = await stack.sendHusd(org.address, 5n * HUSD);
    await topup(stack, org.orgKey, hash);
    await chain.mine(5);
    await stack.startWorkers();
    await waitFor(async () => (await stack.balanceNano(org.orgKey)) === 5_000_000_000n, { what: "credited" });
    const owner = chain.clients.wallet();
    const sweep = await owner.writeContract({
      address: chain.factory,
      abi: depositFactoryAbi,
      functionName: "sweep",
      args: [org.salt, chain.husd],
    });
    await owner.waitForTransactionReceipt({ hash: sweep });
    expect(await chain.clients.test.getCode({ address: org.address as Address })).toMatch(/^0x.+/);
    expect(
      await chain.clients.test.readContract({
        address: chain.husd,
        abi: husdAbi,
        functionName: "balanceOf",
        args: [org.address],
      }),
    ).toBe(0n);
    const swept = await topup(stack, org.orgKey, sweep);
    expect(swept.status).toBe(422); // the sweep moves HUSD *from* the address: nothing to record for the org
    await chain.mine(5);
    await new Promise((r) => setTimeout(r, 500));
    expect(await stack.balanceNano(org.orgKey)).toBe(5_000_000_000n);
  });

  it("an unreachable RPC never orphans or reverses anything: the check fails and is retried", async ({
    db,
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress("Offline Co");
    const { hash } = await stack.sendHusd(org.address, HUSD);
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    const deadChain = createChainClient({ RPC_URL: "http://127.0.0.1:9", CHAIN_ID: chain.chainId });
    await expect(
      verifyDeposit(depositContext(db.appSql, deadChain, stack.app.config), { depositId: id }),
    ).rejects.toThrow();
    expect((await stateOf(stack, org.orgKey, id))?.state).toBe("seen");
    await expect(auditCreditedDeposits(depositContext(db.appSql, deadChain, stack.app.config))).rejects.toThrow();
    expect(
      (await db.sql`select count(*)::int as n from husd_deposits where state = 'reversed' and org_id = ${org.id}`)[0]!
        .n,
    ).toBe(0);
  });

  it("a transfer reorged out and mined again (same transaction, same log) is still credited exactly once", async ({
    db,
    chain,
    stack,
  }) => {
    const org = await stack.orgWithAddress("Remined Co");
    const { hash } = await stack.sendHusd(org.address, 9n * HUSD);
    const raw = await chain.clients.test.request({
      method: "eth_getRawTransactionByHash" as never,
      params: [hash] as never,
    });
    const id = (await topup(stack, org.orgKey, hash)).json.deposits[0].id as string;
    const deps = depositContext(db.appSql, stack.chainClient, stack.app.config);
    await chain.clients.test.request({ method: "anvil_reorg" as never, params: [1, []] as never });
    expect((await verifyDeposit(deps, { depositId: id })).state).toBe("orphaned");
    await chain.clients.test.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never }); // re-mined, same hash
    await chain.mine(1);
    const again = await topup(stack, org.orgKey, hash);
    expect(again.json.deposits[0]).toMatchObject({ id, state: "seen" }); // the same deposit, revived
    await chain.mine(5);
    expect((await verifyDeposit(deps, { depositId: id })).state).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(9_000_000_000n);

    // Reorged out again after the credit and re-mined once more, in a block already final when the
    // audit finds it: the audit moves it, no reversal.
    const raw2 = await chain.clients.test.request({
      method: "eth_getRawTransactionByHash" as never,
      params: [hash] as never,
    });
    const [row] = await db.sql`select block_number from husd_deposits where id = ${id}`;
    const head = await chain.clients.test.getBlockNumber({ cacheTime: 0 });
    await chain.clients.test.request({
      method: "anvil_reorg" as never,
      params: [Number(head - BigInt(row!.block_number)) + 1, []] as never,
    });
    await chain.clients.test.request({ method: "eth_sendRawTransaction" as never, params: [raw2] as never });
    await chain.mine(3);
    expect(await auditCreditedDeposits(depositContext(db.appSql, stack.chainClient, stack.app.config))).toMatchObject({
      reversed: 0,
      moved: 1,
    });
    expect((await stateOf(stack, org.orgKey, id))?.state).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(9_000_000_000n);
  });
});
