import { randomBytes } from "node:crypto";
import { getAddress, parseAbi, type Address, type Hex } from "viem";
import { afterEach, describe, expect } from "vitest";
import { depositFactoryAbi, husdAbi } from "../../abis/index.js";
import { depositSalt } from "../../src/billing/deposits/addresses.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { deployMultiSend } from "../support/multisend.js";
import { waitFor } from "../support/process.js";
import type { TestApp } from "../support/app.js";
import { type ChainContext, chainTest } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;
const MAX_LOGS = 20;

type Abuse = {
  topup(orgKey: string, hash: string): ReturnType<TestApp["call"]>;
  randomAddress(): Address;
  rowsOf(hash: string): Promise<number>;
  sendMany(recipients: Address[], each?: bigint): Promise<Hex>;
};

/** `abuse`: top-ups through the file's stack, the rows they leave, and many transfers in one transaction (MultiSend). */
const it = chainTest.extend<{ abuse: Abuse }>({
  abuse: [
    async ({ db, chain, stack }, use) => {
      const multisend = await deployMultiSend(chain);
      const topup = (orgKey: string, hash: string) =>
        stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } });
      const randomAddress = () => getAddress(`0x${randomBytes(20).toString("hex")}`);
      const rowsOf = async (hash: string) =>
        (await db.sql`select count(*)::int as n from husd_deposits where tx_hash = ${hash.toLowerCase()}`)[0]!
          .n as number;

      /** One transaction with one HUSD Transfer log per recipient (the customer's wallet through MultiSend). */
      async function sendMany(recipients: Address[], each = HUSD): Promise<Hex> {
        const total = each * BigInt(recipients.length);
        await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, total);
        const customer = chain.clients.wallet(DevRoles.customer);
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
          abi: parseAbi(["function send(address token, address[] to, uint256[] amounts)"]),
          functionName: "send",
          args: [chain.husd, recipients, recipients.map(() => each)],
        });
        const receipt = await customer.waitForTransactionReceipt({ hash });
        expect(receipt.logs).toHaveLength(recipients.length);
        return hash;
      }
      await use({ topup, randomAddress, rowsOf, sendMany });
    },
    { scope: "file" },
  ],
});

/** What one org can make POST /v1/billing/husd/topups do: how much work, how many rows (the rate: topup-rate-limit.test.ts). */
describe("HUSD top-ups under abuse: log cap, no rows for unknown recipients", () => {
  it.scoped({ dbOptions: { max: 8 }, stackConfig: { HUSD_TOPUP_MAX_LOGS: String(MAX_LOGS) } });
  afterEach<ChainContext>(({ stack }) => stack.stopWorkers());

  it(`stores no row for transfers to addresses that are no org's, even ${MAX_LOGS - 1} of them beside a real deposit`, async ({
    stack,
    abuse: { topup, randomAddress, rowsOf, sendMany },
  }) => {
    const org = await stack.orgWithAddress("Crowded Co");
    const hash = await sendMany([org.address, ...Array.from({ length: MAX_LOGS - 1 }, randomAddress)]); // exactly at the cap
    const res = await topup(org.orgKey, hash);
    expect(res.status).toBe(201);
    expect(res.json.deposits).toHaveLength(1);
    expect(await rowsOf(hash)).toBe(1);
    // A transaction that pays only unknown addresses: refused, nothing written.
    const elsewhere = await sendMany(Array.from({ length: 5 }, randomAddress));
    expect((await topup(org.orgKey, elsewhere)).json.error.code).toBe("no_deposit_in_transaction");
    expect(await rowsOf(elsewhere)).toBe(0);
  });

  it(`refuses a transaction with more than HUSD_TOPUP_MAX_LOGS (${MAX_LOGS}) logs with 422 too_many_logs, writing nothing`, async ({
    stack,
    abuse: { topup, randomAddress, rowsOf, sendMany },
  }) => {
    const org = await stack.orgWithAddress("Spammed Co");
    const hash = await sendMany([org.address, ...Array.from({ length: MAX_LOGS }, randomAddress)]);
    const res = await topup(org.orgKey, hash);
    expect(res.status).toBe(422);
    expect(res.json.error).toMatchObject({
      type: "invalid_request_error",
      code: "too_many_logs",
      param: "tx_hash",
      request_id: expect.stringMatching(/^req_/),
    });
    expect(res.json.error.message).toContain(`${MAX_LOGS + 1} logs`);
    expect(await rowsOf(hash)).toBe(0);
  });

  it("a transfer to an org's address before the org has asked for it is credited once the org has it", async ({
    chain,
    stack,
    abuse: { topup, rowsOf },
  }) => {
    const late = await stack.app.createOrg("Late Co"); // its deposit address is not registered yet
    const predicted = await chain.clients.test.readContract({
      address: chain.factory,
      abi: depositFactoryAbi,
      functionName: "predictAddress",
      args: [depositSalt(late.id)],
    });
    const { hash } = await stack.sendHusd(predicted, 5n * HUSD);
    // Someone else submits it first, while the address is still no org's: nothing is kept.
    const meddler = await stack.orgWithAddress("Meddler");
    expect((await topup(meddler.orgKey, hash)).status).toBe(422);
    expect(await rowsOf(hash)).toBe(0);
    const registered = await stack.app.call("GET", "/v1/billing/husd/deposit-address", { key: late.orgKey });
    expect(registered.json.address).toBe(predicted);
    const res = await topup(late.orgKey, hash);
    expect(res.status).toBe(201);
    expect(res.json.deposits[0]).toMatchObject({ state: "seen", amount_nano_usd: "5000000000" });
    await chain.mine(5);
    await stack.startWorkers();
    await waitFor(async () => (await stack.balanceNano(late.orgKey)) === 5_000_000_000n, { what: "late org credited" });
  });
});
