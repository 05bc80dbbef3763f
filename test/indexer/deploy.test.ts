import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, mintHusd } from "../../src/chain/local-devnet.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { startTestChain, type TestChain } from "../support/chain-stack.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { depositStack } from "../support/deposit-stack.js";
import { waitFor } from "../support/process.js";
import { copyProject, isReady, waitReady, type CopiedIndexer } from "./project-copy.js";

const HUSD = 10n ** 18n;
const VIEWS = "husd_indexer";
// History before the first deploy: one transfer per block, then empty blocks (a few hundred in all).
const HISTORY_TRANSFERS = 150;
const HISTORY_EMPTY_BLOCKS = 150;

/**
 * Deploys of the indexer as a release does them: a copy of the project, a file changed in it, the
 * indexer stopped and started again against the same database and chain (item 1 of issue 12).
 */
describe("indexer deploys: one schema per build, views switch when ready, old builds pruned", {
  timeout: 240_000,
}, () => {
  let db: TestDatabase;
  let chain: TestChain;
  let project: ReturnType<typeof copyProject>;
  let stack: ReturnType<typeof depositStack>;
  let indexer: CopiedIndexer | undefined;
  const started: CopiedIndexer[] = [];
  const builds: string[] = [];
  const timings: Record<string, number> = {};

  const liveSchema = async () =>
    (
      await db.sql<{ s: string }[]>`
      select table_schema as s from information_schema.view_table_usage
      where view_schema = ${VIEWS} and view_name = '_ponder_meta'`
    )[0]?.s;
  const buildSchemas = async () =>
    (
      await db.sql<
        { s: string }[]
      >`select nspname as s from pg_namespace where nspname like ${`${VIEWS}\\_%`} order by 1`
    ).map((r) => r.s);
  const indexedTransfer = async (hash: string) =>
    (await db.sql`select 1 from husd_indexer.husd_transfer where transaction_hash = ${hash}`).length === 1;
  const transfersOnChain = async () =>
    (
      await chain.clients.test.getContractEvents({
        address: chain.husd,
        abi: husdAbi,
        eventName: "Transfer",
        fromBlock: chain.deployBlock,
      })
    ).length;
  const transfersInViews = async () =>
    (await db.sql<{ n: number }[]>`select count(*)::int as n from husd_indexer.husd_transfer`)[0]!.n;

  // GET /metrics' indexer lag, as the API reports it.
  const lagBlocks = async () => {
    const metrics = createMetrics({ sql: db.appSql, indexer: { viewsSchema: VIEWS, chain: stack.chainClient } });
    return (await metrics.registry.getSingleMetric("hanzo_indexer_lag_blocks")!.get()).values[0]?.value;
  };

  /** A sample of the indexer's own Prometheus metrics (Ponder serves them on its port). */
  const ponderMetric = async (of: CopiedIndexer, name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${of.port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(" ").at(-1));
  };

  async function send(to: `0x${string}`, amount: bigint) {
    const wallet = chain.clients.wallet(DevRoles.customer);
    return wallet.writeContract({ address: chain.husd, abi: husdAbi, functionName: "transfer", args: [to, amount] });
  }

  async function start() {
    const one = await project.start(chain, db.appUrl);
    started.push(one);
    builds.push(one.schema);
    return one;
  }

  async function deploy() {
    await indexer?.stop();
    indexer = await start();
    return indexer;
  }

  beforeAll(async () => {
    db = await createTestDatabase({ max: 12 });
    chain = await startTestChain();
    project = copyProject();
    await mintHusd(chain.rpcUrl, chain.chainId, chain.husd, DevRoles.customer.address, 1_000n * HUSD);
    for (let i = 0; i < HISTORY_TRANSFERS; i++)
      await send(`0x${(i + 1).toString(16).padStart(40, "0")}`, BigInt(i + 1));
    await chain.mine(HISTORY_EMPTY_BLOCKS);
    stack = depositStack(db, chain);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(started.map((i) => i.stop()));
    await stack?.close();
    await chain?.stop();
    await db?.drop();
    project?.remove();
    console.log(`indexer deploy timings (ms): ${JSON.stringify(timings)}`);
  });

  it("the first deploy indexes the chain's history into its own schema and points the views at it", async () => {
    const first = await deploy();
    timings.first_start_to_ready = (await waitReady(first)) - first.startedAt;
    expect(first.schema).toMatch(/^husd_indexer_[0-9a-f]{10}$/);
    expect(await liveSchema()).toBe(first.schema);
    expect(await transfersInViews()).toBe(await transfersOnChain());
    await waitFor(async () => (await lagBlocks()) === 0, { timeoutMs: 10_000, what: "no indexer lag on /metrics" });
  });

  it("after an edit to an unrelated billing file, the new build becomes ready and a new deposit is credited", async () => {
    await stack.startWorkers();
    const org = await stack.orgWithAddress();
    const [previous] = builds;
    const rowsBefore = await transfersInViews();

    project.append(
      "src/billing/invoices/close-cycle.ts",
      "// a release that touches billing code, nothing the indexer uses",
    );
    const next = await deploy();
    // From here on blocks come every second, as on a live chain, so the deposit can become final.
    await chain.clients.test.setIntervalMining({ interval: 1 });
    // A customer pays while the new build is starting.
    const deposit = await stack.sendHusd(org.address, 7n * HUSD);

    // Until the new build is ready, readers keep the previous build's rows.
    const whileStarting: { live: string | undefined; rows: number; lag: number | undefined }[] = [];
    await waitFor(
      async () => {
        if (next.child.exitCode !== null || (await isReady(next))) return true;
        whileStarting.push({ live: await liveSchema(), rows: await transfersInViews(), lag: await lagBlocks() });
        return false;
      },
      { timeoutMs: 120_000, intervalMs: 100, what: "the new build ready" },
    );
    timings.edit_start_to_ready = (await waitReady(next)) - next.startedAt;
    expect(next.schema).not.toBe(previous);
    expect(whileStarting.length).toBeGreaterThan(0);
    // Readers see the previous build until the switch, then the new one, never back. Ponder points
    // the views at the new build as its backfill completes, a moment before /ready answers 200, so
    // the last samples may already show it.
    const lives = whileStarting.map((s) => s.live);
    const switchedAt = lives.indexOf(next.schema);
    expect(lives[0]).toBe(previous);
    expect(new Set(switchedAt === -1 ? lives : lives.slice(0, switchedAt))).toEqual(new Set([previous]));
    if (switchedAt !== -1) expect(new Set(lives.slice(switchedAt))).toEqual(new Set([next.schema]));
    expect(Math.min(...whileStarting.map((s) => s.rows))).toBeGreaterThanOrEqual(rowsBefore);
    // /metrics shows the deploy: the views' build falls behind the chain until the new one is live.
    expect(Math.max(...whileStarting.map((s) => s.lag ?? 0))).toBeGreaterThan(0);

    await waitFor(() => indexedTransfer(deposit.hash), { timeoutMs: 30_000, what: "the deposit in the views" });
    timings.edit_start_to_transfer_in_views = Date.now() - next.startedAt;
    expect(await liveSchema()).toBe(next.schema);
    await waitFor(async () => ((await lagBlocks()) ?? 99) <= 2, {
      timeoutMs: 10_000,
      what: "the lag gone after the switch",
    });
    await waitFor(
      async () => (await stack.deposits(org.orgKey)).some((d) => d.tx_hash === deposit.hash && d.state === "credited"),
      { timeoutMs: 60_000, what: "the deposit credited" },
    );
    timings.edit_start_to_credited = Date.now() - next.startedAt;
    expect(await stack.balanceNano(org.orgKey)).toBe(7_000_000_000n);

    // The history came from Ponder's RPC cache (ponder_sync), not the node: every block up to
    // Ponder's finality (30 blocks behind the head on an unknown chain) of the first build's run.
    expect(await ponderMetric(next, "ponder_historical_cached_blocks")).toBeGreaterThanOrEqual(
      HISTORY_TRANSFERS + HISTORY_EMPTY_BLOCKS - 30,
    );
    // And the old build is kept as the previous one.
    await waitFor(async () => (await transfersInViews()) === (await transfersOnChain()), {
      timeoutMs: 10_000,
      what: "all transfers in the new build",
    });
    expect(await buildSchemas()).toEqual([...builds].sort());
  });

  it("a plain restart without changes resumes the same build where it stopped", async () => {
    const current = builds.at(-1)!;
    const table = async () =>
      (await db.sql<{ oid: number }[]>`select to_regclass(${`${current}.husd_transfer`})::oid::int as oid`)[0]!.oid;
    const tableBefore = await table();
    const rowsBefore = await transfersInViews();

    const again = await deploy();
    expect(again.schema).toBe(current);
    timings.restart_start_to_ready = (await waitReady(again)) - again.startedAt;
    expect(again.output()).toContain("Detected crash recovery");
    // The same table, not dropped and filled again. Ponder's crash recovery keeps the rows up to
    // its finalized block and indexes the last 30 blocks again, live, right after /ready.
    expect(await table()).toBe(tableBefore);
    await waitFor(async () => (await transfersInViews()) >= rowsBefore, {
      timeoutMs: 15_000,
      what: "the rows of the unfinalized blocks back",
    });

    const hash = await send("0x00000000000000000000000000000000000000bb", 3n * HUSD);
    await waitFor(() => indexedTransfer(hash), { timeoutMs: 30_000, what: "a transfer indexed after the restart" });
    expect(await buildSchemas()).toEqual([...new Set(builds)].sort());
  });

  it("a new build started before the old one stops: no gap in detection, then only the live build and the previous one are kept", async () => {
    // A schema that only shares the prefix is not a Ponder build of ours and must survive.
    await db.sql.unsafe(
      `create schema ${VIEWS}_operator_notes; create table ${VIEWS}_operator_notes._ponder_meta (key text primary key, value jsonb)`,
    );
    const [oldest, previous] = [...new Set(builds)];
    const old = indexer!;

    project.append("src/ledger/money.ts", "// another release");
    const latest = await start();
    indexer = latest;
    // The old build is still running and live: a payment made now is seen at once.
    const sentAt = Date.now();
    const hash = await send("0x00000000000000000000000000000000000000cc", 2n * HUSD);
    await waitFor(() => indexedTransfer(hash), { timeoutMs: 30_000, what: "a transfer indexed by the old build" });
    timings.overlap_sent_to_transfer_in_views = Date.now() - sentAt;
    expect(await isReady(latest)).toBe(false);
    expect(await liveSchema()).toBe(previous);

    timings.overlap_start_to_ready = (await waitReady(latest)) - latest.startedAt;
    expect(await liveSchema()).toBe(latest.schema);
    await old.stop();
    await waitFor(() => latest.output().includes("dropped the schemas of old builds"), {
      timeoutMs: 30_000,
      what: "old builds pruned",
    });
    const pruned = JSON.parse(
      latest
        .output()
        .split("\n")
        .find((l) => l.includes("dropped the schemas of old builds"))!,
    );
    expect(pruned).toMatchObject({ live: latest.schema, previous, dropped: [oldest] });
    expect(await buildSchemas()).toEqual([previous!, latest.schema, `${VIEWS}_operator_notes`].sort());
    // Ready means backfilled to the head it saw at its start; the blocks after come a moment later.
    await waitFor(async () => (await transfersInViews()) === (await transfersOnChain()), {
      timeoutMs: 10_000,
      what: "all transfers in the latest build",
    });
  });
});
