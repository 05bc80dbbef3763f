import type { Address, Hex } from "viem";
import { describe, expect } from "vitest";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { payDueReferrals } from "../../src/billing/referrals/pay-referrals.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";
import { contextAt, depositContext } from "../support/context.js";
import { expectDepositInvariants } from "../support/deposit-invariants.js";
import type { DepositStack } from "../support/deposit-stack.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { chainReorg } from "../support/reorg.js";
import { createOrgVia, referralMovements, referralOf, testReferralSettings } from "./support.js";

/**
 * Referrals qualified by HUSD deposits on a real anvil, and what a reorg that takes the qualifying
 * deposit back does to them: before payout the referral is canceled, after payout the grants are
 * clawed back as far as unspent. The holding period is 0 here (payout at the next run, on the
 * wall clock the deposit workers use); the card tests drive the 14 days with a manual clock.
 */
const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;
const settings = testReferralSettings({ REFERRAL_HOLD_DAYS: "0" });

type Steps = {
  reorg: ReturnType<typeof chainReorg>;
  /** A referrer and an org created with its code, the latter with its deposit address. */
  pair(names: [string, string]): Promise<{
    referrer: { id: string; orgKey: string; address: Address };
    referred: { id: string; orgKey: string; address: Address };
  }>;
  /** Sends HUSD from the dev customer wallet to `to`, reports it, mines it final and runs the deposit checks. */
  deposit(orgKey: string, to: Address, amount: bigint): Promise<{ hash: Hex; blockNumber: bigint }>;
  workersRun(): Promise<void>;
  payout(): ReturnType<typeof payDueReferrals>;
};

const it = chainTest.extend<{ steps: Steps }>({
  steps: [
    async ({ db, chain, stack }, use) => {
      const reorg = chainReorg(chain);
      const deps = () => depositContext(db.appSql, stack.chainClient, stack.app.config);
      async function workersRun() {
        await auditCreditedDeposits(deps());
        const pending = await db.sql<
          { id: string }[]
        >`select id from husd_deposits where state in ('seen', 'confirming') order by seen_at`;
        for (const { id } of pending) await verifyDeposit(deps(), { depositId: id });
      }
      const addressOf = async (s: DepositStack, orgKey: string) =>
        (await s.app.call("GET", "/v1/billing/husd/deposit-address", { key: orgKey })).json.address as Address;
      async function pair(names: [string, string]) {
        const referrer = await createOrgVia(stack.app, names[0]);
        const code = (await stack.app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey })).json.code;
        const referred = await createOrgVia(stack.app, names[1], code);
        return {
          referrer: { ...referrer, address: await addressOf(stack, referrer.orgKey) },
          referred: { ...referred, address: await addressOf(stack, referred.orgKey) },
        };
      }
      async function deposit(orgKey: string, to: Address, amount: bigint) {
        const sent = await stack.sendHusd(to, amount);
        const res = await stack.app.call("POST", "/v1/billing/husd/topups", {
          key: orgKey,
          body: { tx_hash: sent.hash },
        });
        if (res.status !== 201 && res.status !== 200) throw new Error(res.text);
        await reorg.mineUntilFinal(sent.blockNumber);
        await workersRun();
        return sent;
      }
      const payout = () => payDueReferrals(contextAt(db.appSql, new Date()), settings);
      await use({ reorg, pair, deposit, workersRun, payout });
    },
    { scope: "file" },
  ],
});

describe("referrals qualified by HUSD deposits", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("the qualifying deposit reorged out before payout: canceled, nothing paid", async ({ db, stack, steps }) => {
    const { referrer, referred } = await steps.pair(["Husd Referrer", "Husd Referred"]);
    const { blockNumber } = await steps.deposit(referred.orgKey, referred.address, 5n * HUSD);
    expect(await stack.balanceNano(referred.orgKey)).toBe(5n * USD);
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "qualified", qualifying_kind: "husd" });

    await steps.reorg.replaceFrom(blockNumber); // the deposit is gone from the chain
    await steps.workersRun();
    expect(await stack.balanceNano(referred.orgKey)).toBe(0n);
    expect(await referralOf(db.sql, referred.id)).toMatchObject({
      state: "canceled",
      reason: "qualifying_topup_reversed",
    });
    await steps.payout();
    expect(await referralMovements(db.sql, referrer.id)).toEqual([]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([]);
    const events = await stack.app.call("GET", "/v1/billing/events?type=referral.canceled", { key: referrer.orgKey });
    expect(events.json.data).toHaveLength(1);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("the qualifying deposit reorged out after payout: both grants clawed back, the referred org's only as far as unspent", async ({
    db,
    stack,
    steps,
  }) => {
    const { referrer, referred } = await steps.pair(["Clawback Referrer", "Clawback Referred"]);
    const { blockNumber } = await steps.deposit(referred.orgKey, referred.address, 50n * HUSD);
    expect((await referralOf(db.sql, referred.id)).state).toBe("qualified");
    expect((await steps.payout()).paid).toBeGreaterThanOrEqual(1);
    expect((await referralOf(db.sql, referred.id)).state).toBe("paid");
    expect(await stack.balanceNano(referred.orgKey)).toBe(60n * USD);

    // The referred org spends: expiring grants are drawn first, so this comes out of its referral grant.
    const gateway = await stack.app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "clawback gateway" },
    });
    const usage = await stack.app.call("POST", "/v1/billing/usage", {
      key: gateway.json.key,
      body: {
        events: [
          {
            idempotency_key: "clawback-spend-1",
            org_id: referred.id,
            timestamp: new Date().toISOString(),
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 400_000, output_tokens: 100_000 },
          },
        ],
      },
    });
    expect(usage.json.results[0].status).toBe("recorded");
    const spent = BigInt(usage.json.results[0].cost_nano_usd);
    expect(spent).toBeGreaterThan(0n);
    expect(spent).toBeLessThan(10n * USD);

    await steps.reorg.replaceFrom(blockNumber);
    await steps.workersRun();
    expect(await referralOf(db.sql, referred.id)).toMatchObject({
      state: "clawed_back",
      reason: "qualifying_topup_reversed",
    });
    expect(await referralMovements(db.sql, referrer.id)).toEqual([
      ["referral_credit", 20n * USD],
      ["referral_clawback", -20n * USD],
    ]);
    // What was spent of the grant stays spent: only the unspent part comes back.
    expect(await referralMovements(db.sql, referred.id)).toEqual([
      ["referral_credit", 10n * USD],
      ["referral_clawback", -(10n * USD - spent)],
    ]);
    expect(await stack.balanceNano(referred.orgKey)).toBe(0n);
    expect(await stack.balanceNano(referrer.orgKey)).toBe(0n);
    const view = await stack.app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey });
    expect(view.json).toMatchObject({
      credits_earned_nano_usd: "0",
      referrals: [
        { state: "clawed_back", reward_nano_usd: String(20n * USD), clawed_back_nano_usd: String(20n * USD) },
      ],
    });
    const clawed = await stack.app.call("GET", "/v1/billing/events?type=referral.clawed_back", {
      key: referred.orgKey,
    });
    expect(clawed.json.data[0].data).toMatchObject({
      role: "referred",
      credit_nano_usd: String(10n * USD),
      clawed_back_nano_usd: String(10n * USD - spent),
    });
    // A payout run or an expiry sweep afterwards changes nothing.
    await steps.payout();
    expect(await referralMovements(db.sql, referred.id)).toHaveLength(2);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("self-referral by wallet: one wallet sent HUSD to both orgs → rejected, no reward", async ({ db, steps }) => {
    const { referrer, referred } = await steps.pair(["Wallet Referrer", "Wallet Referred"]);
    await steps.deposit(referrer.orgKey, referrer.address, 1n * HUSD); // from the dev customer wallet
    await steps.deposit(referred.orgKey, referred.address, 5n * HUSD); // the same wallet
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "rejected", reason: "shared_wallet" });
    await steps.payout();
    expect(await referralMovements(db.sql, referrer.id)).toEqual([]);
    expect(await referralMovements(db.sql, referred.id)).toEqual([]);
  });

  it("a deposit under $5 does not qualify (a cent would have earned both rewards); the next one of $5 does", async ({
    db,
    stack,
    steps,
  }) => {
    const { referred } = await steps.pair(["Cent Referrer", "Cent Referred"]);
    await steps.deposit(referred.orgKey, referred.address, HUSD / 100n); // 0.01 HUSD: credited, not qualifying
    await steps.deposit(referred.orgKey, referred.address, (499n * HUSD) / 100n); // 4.99 HUSD: neither
    expect(await stack.balanceNano(referred.orgKey)).toBe(5n * USD);
    expect(await referralOf(db.sql, referred.id)).toMatchObject({ state: "linked" });
    const { hash } = await steps.deposit(referred.orgKey, referred.address, 5n * HUSD);
    const [qualifying] = await db.sql<{ id: string }[]>`select id from husd_deposits where tx_hash = ${hash}`;
    const [referral] = await db.sql<{ state: string; qualifying_ref: string }[]>`
      select state, qualifying_ref from referrals where referred_org_id = ${referred.id}`;
    expect(referral).toEqual({ state: "qualified", qualifying_ref: qualifying!.id });
  });
});
