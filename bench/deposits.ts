import { spawn } from "node:child_process";
import { parseAbi, type Address } from "viem";
import { pino } from "pino";
import { husdAbi } from "../abis/index.js";
import { createApiKey } from "../src/billing/api-keys.js";
import { depositAddressFor } from "../src/billing/deposits/addresses.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createChainClient } from "../src/chain/client.js";
import { deployDevContracts, DevRoles, devClients, mintHusd, spawnAnvil, waitForRpc } from "../src/chain/local-devnet.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { startWorkers } from "../src/workers/start-workers.js";
import { compileMultiSend } from "../test/support/multisend.js";
import { startBench, stopProcess } from "./support.js";
import { Redis } from "ioredis";
import { createServer } from "node:net";

/**
 * npm run bench:deposits
 *  1. finality → credit: anvil mining a block a second (finalized = latest - 2), Ponder and the
 *     workers running; for each of N deposits, the time from the moment its block is final by
 *     policy (seen by polling the chain every 25 ms) to the moment the credit is committed.
 *  2. backfill: 100,000 HUSD transfers already on chain, a fresh Ponder indexes them all.
 */
const DEPOSITS = Number(process.env.BENCH_DEPOSITS ?? 30);
const BACKFILL = Number(process.env.BENCH_BACKFILL ?? 100_000);
const ROOT = new URL("..", import.meta.url).pathname;
const port = () => new Promise<number>((r) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => r(p)); }); });

const bench = await startBench("deposits");
const sql = createSql(bench.databaseUrl, { max: 8 });
await migrate(sql);
const anvilPort = await port();
const rpcUrl = `http://127.0.0.1:${anvilPort}`;
const chainId = 31337;
const anvil = spawnAnvil({ port: anvilPort, chainId, slotsInAnEpoch: 1, silent: true });
await waitForRpc(rpcUrl);
const contracts = await deployDevContracts(rpcUrl, chainId);
const clients = devClients(rpcUrl, chainId);

function startPonder(schema: string, ponderPort: number) {
  const env = { ...process.env, DATABASE_URL: bench.databaseUrl, RPC_URL: rpcUrl, CHAIN_ID: String(chainId), HUSD_ADDRESS: contracts.husd, HUSD_START_BLOCK: String(contracts.deployBlock), PONDER_PORT: String(ponderPort), PONDER_SCHEMA: schema, PONDER_POLLING_INTERVAL_MS: "200", PONDER_LOG_LEVEL: "warn" };
  return spawn(process.execPath, ["--import", "tsx", "bin/indexer.ts"], { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
}
const count = async (schema: string) => {
  try {
    const rows = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from "${schema}".husd_transfer`);
    return rows[0]!.n;
  } catch {
    return 0;
  }
};

// ---- 2. Backfill first (on a quiet chain): BACKFILL transfers, 1,000 per transaction.
console.log(`writing ${BACKFILL} HUSD transfers to the chain…`);
const { abi, bytecode } = compileMultiSend();
const customer = clients.wallet(DevRoles.customer);
const multisend = (await customer.waitForTransactionReceipt({ hash: await customer.deployContract({ abi, bytecode, args: [] }) })).contractAddress!;
await mintHusd(rpcUrl, chainId, contracts.husd, DevRoles.customer.address, 10n ** 30n);
await customer.waitForTransactionReceipt({ hash: await customer.writeContract({ address: contracts.husd, abi: husdAbi, functionName: "approve", args: [multisend, 10n ** 30n] }) });
const recipients = Array.from({ length: 20 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}` as Address);
const perTx = 500;
for (let sent = 0; sent < BACKFILL; sent += perTx) {
  const n = Math.min(perTx, BACKFILL - sent);
  const hash = await customer.writeContract({
    address: multisend,
    abi: parseAbi(["function send(address token, address[] to, uint256[] amounts)"]),
    functionName: "send",
    args: [contracts.husd, Array.from({ length: n }, (_, i) => recipients[i % recipients.length]!), Array.from({ length: n }, () => 1n)],
    gas: 20_000_000n,
  });
  await customer.waitForTransactionReceipt({ hash, pollingInterval: 20 });
}
await clients.test.mine({ blocks: 3 }); // past finality, so Ponder backfills rather than live-indexes
const expected = BACKFILL + 1; // + the mint
const ponderPort = await port();
const t0 = performance.now();
const backfiller = startPonder("bench_backfill", ponderPort);
while ((await count("bench_backfill")) < expected) await new Promise((r) => setTimeout(r, 100));
const backfillSeconds = (performance.now() - t0) / 1000;
await stopProcess(backfiller);
console.log(`backfilled ${expected} transfers in ${backfillSeconds.toFixed(1)} s (including Ponder's start)`);

// ---- 1. Finality → credit with 1 s blocks, through the indexer and the workers.
await clients.test.setIntervalMining({ interval: 1 });
const config = loadConfig({ DATABASE_URL: bench.databaseUrl, RPC_URL: rpcUrl, CHAIN_ID: String(chainId), HUSD_ADDRESS: contracts.husd, DEPOSIT_FACTORY_ADDRESS: contracts.factory, FINALITY_CONFIRMATIONS: "3", PONDER_SCHEMA: "bench_live", LOG_LEVEL: "silent" });
const chain = createChainClient(config);
const orgs: { id: string; address: Address }[] = [];
for (let i = 0; i < DEPOSITS; i++) {
  const org = await createOrganization(sql, { name: `bench ${i}` });
  await createApiKey(sql, { orgId: org.id, scope: "org" });
  orgs.push({ id: org.id, address: (await depositAddressFor(sql, chain, config, org.id)).address });
}
const live = startPonder("bench_live", await port());
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const workers = await startWorkers({ sql, connection: redis, prefix: bench.redisPrefix, logger: pino({ level: "silent" }), clock: () => new Date(), config, chain });
while ((await count("bench_live")) < expected) await new Promise((r) => setTimeout(r, 200)); // caught up

console.log(`sending ${DEPOSITS} deposits, one every ~0.7 s…`);
const sent: { org: string; block: bigint }[] = [];
// Watches the chain from before the first send: the moment each block becomes final by policy
// (finalized tag past it and 3 confirmations), seen by polling every 25 ms.
const finalAt = new Map<bigint, number>();
let sending = true;
const watcher = (async () => {
  for (;;) {
    const [finalized, latest] = await Promise.all([chain.getBlock({ blockTag: "finalized" }), chain.getBlockNumber({ cacheTime: 0 })]);
    const now = Date.now();
    for (const s of sent) if (!finalAt.has(s.block) && finalized.number! >= s.block && latest - s.block + 1n >= 3n) finalAt.set(s.block, now);
    if (!sending && sent.every((s) => finalAt.has(s.block))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
})();
for (const org of orgs) {
  const hash = await customer.writeContract({ address: contracts.husd, abi: husdAbi, functionName: "transfer", args: [org.address, 10n ** 18n] });
  const receipt = await customer.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  sent.push({ org: org.id, block: receipt.blockNumber });
  await new Promise((r) => setTimeout(r, 700));
}
sending = false;
await watcher;
const latencies: number[] = [];
for (const s of sent) {
  let row: { credited_at: Date | null } | undefined;
  for (let i = 0; i < 300; i++) {
    [row] = await sql<{ credited_at: Date | null }[]>`select credited_at from husd_deposits where org_id = ${s.org}`;
    if (row?.credited_at) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (row?.credited_at && finalAt.has(s.block)) latencies.push(Math.max(0, row.credited_at.getTime() - finalAt.get(s.block)!));
}
await workers.close();
redis.disconnect();
await stopProcess(live);
anvil.kill("SIGTERM");
await sql.end();
await bench.cleanup();

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
console.log(`\nmeasure                          value`);
console.log(`deposits credited                ${latencies.length} / ${DEPOSITS}`);
console.log(`finality → credit p50 / p95      ${pct(50)} ms / ${pct(95)} ms`);
console.log(`backfill                         ${(expected / backfillSeconds).toFixed(0)} transfers/s (${expected} in ${backfillSeconds.toFixed(1)} s)\n`);
console.log(JSON.stringify({ finality_to_credit_p50_ms: pct(50), finality_to_credit_p95_ms: pct(95), backfill_transfers_per_s: Math.round(expected / backfillSeconds), deposits_credited: latencies.length, backfill_transfers: expected }));
process.exit(0);
