import fc from "fast-check";
import { describe, expect } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import type { DepositContext } from "../../src/billing/deposits/context.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createChainClient } from "../../src/chain/client.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { checkLedger } from "../../src/ledger/check.js";
import { chainTest as it } from "../support/chain-fixtures.js";
import { depositContext } from "../support/context.js";
import { expectDepositInvariants } from "../support/deposit-invariants.js";
import { chainReorg } from "../support/reorg.js";
import { startRpcProxy } from "../support/rpc-proxy.js";
import { movementsOf, startLyingNode } from "../support/lying-node.js";
import { modelSettings } from "../model/settings.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;

type NodeKind = "honest" | "fork" | "emptyLogs" | "lag" | "mixed";
type Work = { what: "audit" | "verify" | "topup"; node: NodeKind };
type Step =
  | { kind: "toB"; k: number }
  | { kind: "backToA"; k: number }
  | { kind: "toC"; gap: number; k: number }
  | { kind: "mine"; k: number }
  | { kind: "work"; ops: Work[]; parallel: boolean }
  | { kind: "race"; chain: "toB" | "backToA" | "toC"; k: number; ops: Work[] };

const nodeArb = fc.constantFrom<NodeKind>("honest", "honest", "fork", "emptyLogs", "lag", "mixed");
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("toB" as const), k: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("backToA" as const), k: fc.integer({ min: 0, max: 6 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("toC" as const),
      gap: fc.integer({ min: 0, max: 2 }),
      k: fc.integer({ min: 0, max: 5 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("mine" as const), k: fc.integer({ min: 1, max: 4 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("work" as const),
      ops: fc.array(
        fc.record({
          what: fc.constantFrom("audit" as const, "verify" as const, "verify" as const, "topup" as const),
          node: nodeArb,
        }),
        { minLength: 1, maxLength: 5 },
      ),
      parallel: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("race" as const),
      chain: fc.constantFrom("toB" as const, "backToA" as const, "toC" as const),
      k: fc.integer({ min: 0, max: 4 }),
      ops: fc.array(
        fc.record({ what: fc.constantFrom("audit" as const, "verify" as const, "topup" as const), node: nodeArb }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
  },
);
const { runs, seed, path } = modelSettings(15);
const tally = { runs: 0, canonical: 0, maxCredits: 0, creditedMidStory: 0, revivals: 0, threw: 0 };

/**
 * Generated chain stories around a deposit taken away and seen again (helper-84, on the revival of
 * c13f21c): its block replaced by B, brought back (A), replaced by a fork C, blocks mined, and the
 * workers' audits, checks and the org's top-up reports run in order or at once, some racing the
 * chain's change, each answered by an honest node, one on a minority fork, one answering empty
 * logs, one three blocks behind, or a mix. After every story the deposit is credited once, net,
 * exactly when its transaction is on the chain (else nothing stands), its invariants hold and the
 * ledger balances.
 */
describe("generated chain stories around revival", () => {
  it.scoped({ dbOptions: { max: 12 } });

  it(`ledger nets one credit per canonical final transfer after every story (A/B/C flips, lying nodes, concurrent audits and checks; seed ${seed})`, {
    timeout: 1_500_000,
  }, async ({ chain, stack, db }) => {
    const t = chain.clients.test;
    const reorg = chainReorg(chain);
    // Lies about the current story's deposit (set per run).
    let cur: { height: string; hash: string; blockHash: string } | null = null;
    const forkLie = (p: unknown[], method: string) => {
      if (!cur) return undefined;
      if (method === "eth_getBlockByNumber" && p[0] === cur.height) return "fork-block";
      if (method === "eth_getTransactionReceipt" && String(p[0]).toLowerCase() === cur.hash) return null;
      if (method === "eth_getBlockByHash" && String(p[0]).toLowerCase() === cur.blockHash) return null;
      return undefined;
    };
    const forkNode = await startLyingNode(chain.rpcUrl, (r) => forkLie(r.params ?? [], r.method));
    const emptyNode = await startLyingNode(chain.rpcUrl, (r) => (r.method === "eth_getLogs" ? [] : undefined));
    let flipCoin = 0;
    const mixedNode = await startLyingNode(chain.rpcUrl, (r) =>
      (flipCoin++ * 7919) % 3 === 0 ? forkLie(r.params ?? [], r.method) : undefined,
    );
    const lag = await startRpcProxy(chain.rpcUrl);
    lag.setLag(3);
    const ctxOf = (url: string) =>
      depositContext(db.sql, createChainClient({ RPC_URL: url, CHAIN_ID: chain.chainId }), stack.app.config);
    const nodes: Record<NodeKind, DepositContext> = {
      honest: ctxOf(chain.rpcUrl),
      fork: ctxOf(forkNode.url),
      emptyLogs: ctxOf(emptyNode.url),
      lag: ctxOf(lag.url),
      mixed: ctxOf(mixedNode.url),
    };
    let runNo = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 14 }), async (steps) => {
          runNo++;
          const org = await stack.orgWithAddress(`Story ${runNo}`);
          const amount = BigInt(runNo) * HUSD;
          await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, amount);
          let s0 = await t.snapshot();
          const wallet = chain.clients.wallet(DevRoles.customer);
          const hash = await wallet.writeContract({
            address: chain.husd,
            abi: husdAbi,
            functionName: "transfer",
            args: [org.address, amount],
          });
          const { blockNumber } = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 50 });
          const a = await t.getBlock({ blockNumber });
          const raw = await reorg.raw(hash);
          cur = { height: `0x${blockNumber.toString(16)}`, hash: hash.toLowerCase(), blockHash: a.hash.toLowerCase() };
          const topup = (ctxNode: NodeKind) =>
            ctxNode === "honest"
              ? stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } })
              : Promise.resolve(null);
          const first = await topup("honest");
          const id = first!.json.deposits[0].id as string;
          const log: string[] = [];
          const state = async () =>
            (await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`)[0]!.state;
          const run = async (w: Work) => {
            const c = nodes[w.node];
            try {
              if (w.what === "audit") await auditCreditedDeposits(c);
              else if (w.what === "verify") await verifyDeposit(c, { depositId: id });
              else await topup(w.node);
            } catch (err) {
              log.push(`  ${w.what}@${w.node} threw ${(err as Error).name}: ${(err as Error).message.slice(0, 80)}`);
              if ((err as Error).name === "DepositInvariantError") throw err;
            }
          };
          const resnap = async () => {
            await t.revert({ id: s0 });
            s0 = await t.snapshot();
          };
          const chainOp = async (s: { kind: "toB" | "backToA" | "toC"; k: number; gap?: number }) => {
            if (s.kind === "toB") {
              await resnap();
              await t.mine({ blocks: Math.max(1, s.k) });
            } else if (s.kind === "backToA") {
              await resnap();
              await t.setNextBlockTimestamp({ timestamp: a.timestamp });
              await t.setNextBlockBaseFeePerGas({ baseFeePerGas: a.baseFeePerGas! });
              await t.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never });
              await reorg.blockOf(hash);
              if (s.k > 0) await t.mine({ blocks: s.k });
            } else {
              await resnap();
              const gap = s.gap ?? 1;
              if (gap > 0) await t.mine({ blocks: gap });
              else await t.setNextBlockTimestamp({ timestamp: a.timestamp + 1n });
              await t.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never });
              await reorg.blockOf(hash);
              if (s.k > 0) await t.mine({ blocks: s.k });
            }
          };
          let revived = 0;
          for (const s of steps) {
            const before = await movementsOf(db.sql, id);
            const prevState = await state();
            if (s.kind === "race") {
              await Promise.all([chainOp({ kind: s.chain, k: s.k }), ...s.ops.map(run)]);
            } else if (s.kind === "toB") {
              await resnap();
              await t.mine({ blocks: s.k });
            } else if (s.kind === "backToA") {
              await resnap();
              await t.setNextBlockTimestamp({ timestamp: a.timestamp });
              await t.setNextBlockBaseFeePerGas({ baseFeePerGas: a.baseFeePerGas! });
              await t.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never });
              await reorg.blockOf(hash);
              if (s.k > 0) await t.mine({ blocks: s.k });
            } else if (s.kind === "toC") {
              await resnap();
              if (s.gap > 0) await t.mine({ blocks: s.gap });
              else await t.setNextBlockTimestamp({ timestamp: a.timestamp + 1n });
              await t.request({ method: "eth_sendRawTransaction" as never, params: [raw] as never });
              await reorg.blockOf(hash);
              if (s.k > 0) await t.mine({ blocks: s.k });
            } else if (s.kind === "mine") {
              await t.mine({ blocks: s.k });
            } else if (s.parallel) {
              await Promise.all(s.ops.map(run));
            } else {
              for (const w of s.ops) await run(w);
            }
            const m = await movementsOf(db.sql, id);
            const now = await state();
            if ((prevState === "orphaned" || prevState === "reversed") && now !== prevState) revived++;
            log.push(`${JSON.stringify(s)} -> ${now} c${m.credits} r${m.reversals}`);
            await expectDepositInvariants(db.sql);
            if (s.kind === "work" && m.credits > before.credits) {
              // Credited in this step (no chain change during it): its block must be canonical and final on the chain.
              tally.creditedMidStory++;
              const [row] = await db.sql<
                { block_number: string; block_hash: string }[]
              >`select block_number::text, block_hash from husd_deposits where id = ${id}`;
              const blk = await t.getBlock({ blockNumber: BigInt(row!.block_number) }).catch(() => null);
              const head = await t.getBlockNumber({ cacheTime: 0 });
              const ok = blk?.hash.toLowerCase() === row!.block_hash && head - BigInt(row!.block_number) + 1n >= 3n;
              if (!ok) console.log(`run ${runNo}: credited in a block not canonical/final\n${log.join("\n")}`);
              expect(ok).toBe(true);
            }
          }
          // Settle: honest node, the chain as it is now, made final.
          await t.mine({ blocks: 6 });
          for (let i = 0; i < 3; i++) {
            await topup("honest");
            await auditCreditedDeposits(nodes.honest);
            await verifyDeposit(nodes.honest, { depositId: id });
          }
          const receipt = await t.getTransactionReceipt({ hash }).catch(() => null);
          tally.runs++;
          tally.revivals += revived;
          tally.threw += log.filter((l) => l.includes(" threw ")).length;
          const canonical = receipt?.status === "success";
          const m = await movementsOf(db.sql, id);
          if (canonical) tally.canonical++;
          tally.maxCredits = Math.max(tally.maxCredits, m.credits);
          const got = { state: await state(), net: m.net, balance: await stack.balanceNano(org.orgKey) };
          const want = canonical
            ? { state: "credited", net: BigInt(runNo) * USD, balance: BigInt(runNo) * USD }
            : { state: expect.stringMatching(/^(orphaned|reversed|seen|confirming)$/), net: 0n, balance: 0n };
          expect(got, `run ${runNo}: ${m.credits} credits, ${m.reversals} reversals\n${log.join("\n")}`).toEqual(want);
          await expectDepositInvariants(db.sql);
          const ledger = await checkLedger(db.sql);
          expect(ledger).toEqual({ unbalancedTransactions: [], balanceMismatches: [], heldMismatches: [] });
          // Move on from this story's chain: keep whatever it left, the next story starts above it.
          s0 = await t.snapshot();
          cur = null;
        }),
        { numRuns: runs, seed, path, endOnFailure: true },
      );
      if (process.env.MODEL_STATS) console.log("tally", JSON.stringify(tally));
    } finally {
      await forkNode.close();
      await emptyNode.close();
      await mixedNode.close();
      await lag.close();
    }
  });
});
