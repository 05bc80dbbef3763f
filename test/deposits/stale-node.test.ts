import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { reconcileTransaction, verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient } from "../../src/chain/client.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { chainTest as it } from "../support/chain-fixtures.js";
import { depositContext } from "../support/context.js";
import { expectDepositInvariants } from "../support/deposit-invariants.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { movementsOf } from "../support/lying-node.js";
import { chainReorg } from "../support/reorg.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

type RpcReq = { jsonrpc: "2.0"; id: number; method: string; params?: unknown[] };

/**
 * A node of the pool that stopped following the chain (stuck, or partitioned) at a height past
 * the deposits' block: once frozen, it answers every read it answered before from what it had
 * then (its head, its finalized block, the deposit's block, receipt and logs), as a node still on
 * the old fork does; everything else goes to anvil. It counts the calls it gets.
 */
async function startStaleNode(upstreamUrl: string) {
  const seen = new Map<string, unknown>();
  let frozen = false;
  let calls = 0;
  const key = (r: RpcReq) => `${r.method}:${JSON.stringify(r.params ?? [])}`;
  const one = async (r: RpcReq) => {
    calls++;
    if (frozen && seen.has(key(r))) return { jsonrpc: "2.0", id: r.id, result: seen.get(key(r)) };
    const res = (await (
      await fetch(upstreamUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(r),
      })
    ).json()) as { result?: unknown };
    if (!frozen && "result" in res) seen.set(key(r), res.result);
    return { ...res, id: r.id };
  };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += String(d)));
    req.on("end", async () => {
      const parsed = JSON.parse(body) as RpcReq | RpcReq[];
      const out = Array.isArray(parsed) ? await Promise.all(parsed.map(one)) : await one(parsed);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    freeze: () => {
      frozen = true;
    },
    calls: () => calls,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * Found by helper-84 in c13f21c, which let a deposit taken away be seen again in its own block when
 * a node judged that block canonical: a node behind the reorg (still on the old fork) judged so,
 * and re-credited a deposit whose transaction the chain had dropped, or revived dropped deposits
 * at every audit it answered. A deposit is now seen again in its own block only from a view whose
 * head is past the one that took it away (migration 0055).
 */
describe("a stale node (still on the old fork) in the pool after a reorg", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("a deposit reversed because its transaction left the chain is not credited again from a stale node's answers (7 HUSD)", {
    timeout: 120_000,
  }, async ({ chain, stack, db }) => {
    const reorg = chainReorg(chain);
    const stale = await startStaleNode(chain.rpcUrl);
    try {
      const honest = depositContext(db.sql, stack.chainClient, stack.app.config);
      const staleCtx = depositContext(
        db.sql,
        createChainClient({ RPC_URL: stale.url, CHAIN_ID: chain.chainId }),
        stack.app.config,
      );
      const org = await stack.orgWithAddress("Stale Node");
      const { hash, blockNumber } = await stack.sendHusd(org.address, 7n * HUSD);
      const id = (await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } }))
        .json.deposits[0].id as string;
      await reorg.mineUntilFinal(blockNumber);
      // The stale node, while it still followed the chain, answered a check and a re-read.
      await verifyDeposit(staleCtx, { depositId: id });
      await reconcileTransaction(staleCtx, { chainId: chain.chainId, txHash: hash });
      await auditCreditedDeposits(staleCtx);
      expect(await stack.balanceNano(org.orgKey)).toBe(7n * USD);
      stale.freeze();

      // A deep reorg: the deposit's block and everything after it replaced, its transaction gone.
      await reorg.replaceFrom(blockNumber, []);
      await chain.mine(5);
      expect(await chain.clients.test.getTransactionReceipt({ hash }).catch(() => null)).toBeNull();
      await auditCreditedDeposits(honest);
      const afterReorg = {
        state: (await db.sql`select state from husd_deposits where id = ${id}`)[0]!.state,
        balance: await stack.balanceNano(org.orgKey),
      };

      // The load balancer sends some of the workers' reads to the stale node, three times over.
      for (let i = 0; i < 3; i++) {
        await auditCreditedDeposits(staleCtx);
        await verifyDeposit(staleCtx, { depositId: id });
        if (i < 2) await auditCreditedDeposits(honest);
      }
      const m = await movementsOf(db.sql, id);
      const now = {
        state: (await db.sql`select state from husd_deposits where id = ${id}`)[0]!.state,
        balance: await stack.balanceNano(org.orgKey),
      };
      await expectDepositInvariants(db.sql);
      await expectLedgerConsistent(db.sql);
      // The transaction is on no chain but the stale node's: the reversal must stand.
      expect({ afterReorg, now, credits: m.credits }).toEqual({
        afterReorg: { state: "reversed", balance: 0n },
        now: { state: "reversed", balance: 0n },
        credits: 1,
      });
    } finally {
      await stale.close();
    }
  });

  it("deposits a reorg dropped before finality are not revived by every audit a node behind the reorg answers (10 deposits, 3 rounds)", {
    timeout: 180_000,
  }, async ({ chain, stack, db }) => {
    const N = 10;
    const reorg = chainReorg(chain);
    const stale = await startStaleNode(chain.rpcUrl);
    try {
      const honest = depositContext(db.sql, stack.chainClient, stack.app.config);
      const staleCtx = depositContext(
        db.sql,
        createChainClient({ RPC_URL: stale.url, CHAIN_ID: chain.chainId }),
        stack.app.config,
      );
      const org = await stack.orgWithAddress("Stale Churn");
      const ids: string[] = [];
      const hashes: `0x${string}`[] = [];
      await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, BigInt(N) * HUSD);
      const t = chain.clients.test;
      await t.setAutomine(false);
      const wallet = chain.clients.wallet(DevRoles.customer);
      for (let i = 0; i < N; i++)
        hashes.push(
          await wallet.writeContract({
            address: chain.husd,
            abi: husdAbi,
            functionName: "transfer",
            args: [org.address, 1n * HUSD],
          }),
        );
      await t.mine({ blocks: 1 });
      await t.setAutomine(true);
      const { blockNumber } = await t.getTransactionReceipt({ hash: hashes[0]! });
      for (const hash of hashes)
        ids.push(
          (await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } })).json
            .deposits[0].id,
        );
      // The stale node read them while it followed the chain (not yet final: no credit).
      for (const id of ids) await verifyDeposit(staleCtx, { depositId: id });
      for (const h of hashes) await reconcileTransaction(staleCtx, { chainId: chain.chainId, txHash: h });
      await auditCreditedDeposits(staleCtx);
      stale.freeze();
      await reorg.replaceFrom(blockNumber, []);
      await chain.mine(3);
      for (const id of ids) await verifyDeposit(honest, { depositId: id });
      const states = async () =>
        Object.fromEntries(
          (
            await db.sql<
              { state: string; n: number }[]
            >`select state, count(*)::int as n from husd_deposits where org_id = ${org.id} group by state`
          ).map((r) => [r.state, r.n]),
        );
      const before = await states();
      const rounds: unknown[] = [];
      for (let round = 0; round < 3; round++) {
        const c0 = stale.calls();
        const out = await auditCreditedDeposits(staleCtx);
        const afterStale = await states();
        const c1 = stale.calls();
        for (const id of ids) await verifyDeposit(honest, { depositId: id });
        rounds.push({ staleAuditCalls: c1 - c0, revived: out.revived, afterStale, afterHonestChecks: await states() });
      }
      await expectDepositInvariants(db.sql);
      await expectLedgerConsistent(db.sql);
      expect(before).toEqual({ orphaned: N });
      // The stale node has the dropped transactions in a block the chain replaced: nothing to revive.
      expect(rounds.map((r) => (r as { afterStale: unknown }).afterStale)).toEqual([
        { orphaned: N },
        { orphaned: N },
        { orphaned: N },
      ]);
    } finally {
      await stale.close();
    }
  });
});
