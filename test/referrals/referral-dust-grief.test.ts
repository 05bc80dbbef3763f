import { maxUint256, type Address } from "viem";
import { describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { devAccounts, mintHusd } from "../../src/chain/local-devnet.js";
import { chainTest as it } from "../support/chain-fixtures.js";
import { depositContext } from "../support/context.js";
import { deployMultiSend, multiSendAbi } from "../support/multisend.js";
import { chainReorg } from "../support/reorg.js";
import { createOrgVia, referralOf } from "./support.js";

const HUSD = 10n ** 18n;

/**
 * The self-referral signal `shared_wallet` counted every recorded transfer, including ones recorded
 * as rejected (below the dust minimum: never credited). Recording them is in a stranger's hands: a
 * top-up records HUSD transfers to every org's deposit address in the submitted transaction. So a
 * stranger, with one transaction of 1-wei transfers and one top-up call of its own org, got any
 * honest referral rejected (found by helper-83). Only credited deposits count now.
 */
describe("a referral and a stranger's dust", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("1 wei from a stranger's wallet to both orgs (recorded as rejected dust) does not make an honest referral a self-referral", async ({
    db,
    chain,
    stack,
  }) => {
    const addressOf = async (orgKey: string) =>
      (await stack.app.call("GET", "/v1/billing/husd/deposit-address", { key: orgKey })).json.address as Address;
    const referrer = await createOrgVia(stack.app, "Honest Referrer");
    const code = (await stack.app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey })).json.code;
    const referred = await createOrgVia(stack.app, "Honest Referred", code);
    const [referrerAddress, referredAddress] = [await addressOf(referrer.orgKey), await addressOf(referred.orgKey)];

    // The stranger: its own org, its own wallet, a MultiSend; 1 wei to itself and to each victim.
    const stranger = await stack.orgWithAddress("Stranger");
    const wallet = devAccounts[7]!;
    const multisend = await deployMultiSend(chain, wallet);
    const w = chain.clients.wallet(wallet);
    await w.waitForTransactionReceipt({
      hash: await w.writeContract({
        address: chain.husd,
        abi: husdAbi,
        functionName: "approve",
        args: [multisend, maxUint256],
      }),
    });
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, wallet.address, 3n);
    const dust = await w.writeContract({
      address: multisend,
      abi: multiSendAbi,
      functionName: "send",
      args: [chain.husd, [stranger.address, referrerAddress, referredAddress], [1n, 1n, 1n]],
    });
    await w.waitForTransactionReceipt({ hash: dust });
    const res = await stack.app.call("POST", "/v1/billing/husd/topups", {
      key: stranger.orgKey,
      body: { tx_hash: dust },
    });
    expect(res.status).toBe(201);
    const recorded = await db.sql<{ org_id: string; state: string; from_address: string }[]>`
      select org_id, state, from_address from husd_deposits where tx_hash = ${dust} order by org_id`;
    expect(recorded.filter((r) => r.org_id === referrer.id || r.org_id === referred.id).map((r) => r.state)).toEqual([
      "rejected",
      "rejected",
    ]);

    // The referred org's own first top-up: 10 HUSD from its own wallet, final, credited.
    const sent = await stack.sendHusd(referredAddress, 10n * HUSD);
    const dep = await stack.app.call("POST", "/v1/billing/husd/topups", {
      key: referred.orgKey,
      body: { tx_hash: sent.hash },
    });
    await chainReorg(chain).mineUntilFinal(sent.blockNumber);
    const deps = depositContext(db.sql, stack.chainClient, stack.app.config);
    expect((await verifyDeposit(deps, { depositId: dep.json.deposits[0].id })).state).toBe("credited");

    const referral = await referralOf(db.sql, referred.id);
    expect({ state: referral.state, reason: referral.reason }).toEqual({ state: "qualified", reason: null });
  });
});
