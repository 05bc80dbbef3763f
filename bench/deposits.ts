import { spawn } from "node:child_process";
import { encodeFunctionData, parseAbi, type Address, type Hex } from "viem";
import { pino } from "pino";
import { husdAbi } from "../abis/index.js";
import { createApiKey } from "../src/billing/api-keys.js";
import { createBillingContext } from "../src/billing/context.js";
import { depositAddressFor } from "../src/billing/deposits/addresses.js";
import { createOrganization } from "../src/billing/organizations.js";
import { createChainClient } from "../src/chain/client.js";
import {
  deployDevContracts,
  DevRoles,
  devClients,
  mintHusd,
  spawnAnvil,
  waitForRpc,
} from "../src/chain/local-devnet.js";
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
 * Transactions are signed here and sent without waiting for each one's receipt; completion is
 * read from the chain (the sender's mined nonce, then balances), so a slow, loaded machine makes
 * the run slower, never fails it on a per-transaction timeout. Only a chain that stops mining
 * our transactions for STALL_MS ends it.
 */
const DEPOSITS = Number(process.env.BENCH_DEPOSITS ?? 30);
const BACKFILL = Number(process.env.BENCH_BACKFILL ?? 100_000);
const STALL_MS = Number(process.env.BENCH_STALL_MS ?? 300_000);
const ROOT = new URL("..", import.meta.url).pathname;
const port = () =>
  new Promise<number>((r) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });

const bench = await startBench("deposits");
const sql = createSql(bench.databaseUrl, { max: 8 });
const ctx = createBillingContext({ sql });
await migrate(sql);
const anvilPort = await port();
const rpcUrl = `http://127.0.0.1:${anvilPort}`;
const chainId = 31337;
const anvil = spawnAnvil({ port: anvilPort, chainId, slotsInAnEpoch: 1, silent: true });
await waitForRpc(rpcUrl);
const contracts = await deployDevContracts(rpcUrl, chainId);
const clients = devClients(rpcUrl, chainId);

function startPonder(schema: string, ponderPort: number) {
  const env = {
    ...process.env,
    DATABASE_URL: bench.databaseUrl,
    RPC_URL: rpcUrl,
    CHAIN_ID: String(chainId),
    HUSD_ADDRESS: contracts.husd,
    HUSD_START_BLOCK: String(contracts.deployBlock),
    PONDER_PORT: String(ponderPort),
    PONDER_SCHEMA: schema,
    PONDER_POLLING_INTERVAL_MS: "200",
    PONDER_LOG_LEVEL: "warn",
  };
  return spawn(process.execPath, ["--import", "tsx", "bin/indexer.ts"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
}
const count = async (schema: string) => {
  try {
    const rows = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from "${schema}".husd_transfer`);
    return rows[0]!.n;
  } catch {
    return 0;
  }
};

// ---- 2. Backfill first (on a quiet chain): BACKFILL transfers, 500 per transaction.
const customer = clients.wallet(DevRoles.customer);

/** Polls until `done` holds; fails only if `progress` (a number that grows while the chain works) stops moving for STALL_MS. */
async function until(what: string, done: () => Promise<boolean>, progress: () => Promise<bigint>, intervalMs = 100) {
  let last = await progress();
  let movedAt = Date.now();
  while (!(await done())) {
    const now = await progress();
    if (now !== last) [last, movedAt] = [now, Date.now()];
    else if (Date.now() - movedAt > STALL_MS)
      throw new Error(`${what}: no progress for ${STALL_MS / 1000} s (at ${now})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
const minedNonce = async () =>
  BigInt(await customer.getTransactionCount({ address: DevRoles.customer.address, blockTag: "latest" }));

/**
 * Signs each transaction with the next nonce and fixed gas and fees (no per-transaction lookups),
 * sends it, and does not wait for its receipt; then waits until the chain has mined them all.
 * A send that fails is sent again (the same signed bytes: a resend of an accepted one is harmless).
 */
async function sendAll(txs: { to?: Address; data: Hex; gas: bigint }[]): Promise<Hex[]> {
  const first = await minedNonce();
  const fees = await customer.estimateFeesPerGas();
  // Fees fixed for the whole run: room for the base fee to rise while the batch is mined.
  const maxFeePerGas = fees.maxFeePerGas * 4n;
  const hashes: Hex[] = [];
  for (const [i, tx] of txs.entries()) {
    const raw = await customer.signTransaction({
      ...tx,
      nonce: Number(first) + i,
      maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      chain: clients.chain,
    });
    for (let attempt = 1; ; attempt++) {
      try {
        hashes.push(await customer.sendRawTransaction({ serializedTransaction: raw }));
        break;
      } catch (err) {
        if (/already known|already imported|nonce too low/i.test(String((err as Error).message))) break; // an earlier attempt got in
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 1_000 * attempt));
      }
    }
  }
  const target = first + BigInt(txs.length);
  await until(`mining ${txs.length} transactions`, async () => (await minedNonce()) >= target, minedNonce);
  return hashes;
}

console.log(`writing ${BACKFILL} HUSD transfers to the chain…`);
const writeStarted = performance.now();
const { bytecode } = compileMultiSend();
const [deployHash] = await sendAll([{ data: bytecode, gas: 1_000_000n }]);
const multisend = (await customer.getTransactionReceipt({ hash: deployHash! })).contractAddress!;
await mintHusd(rpcUrl, chainId, contracts.husd, DevRoles.customer.address, 10n ** 30n);
await sendAll([
  {
    to: contracts.husd,
    data: encodeFunctionData({ abi: husdAbi, functionName: "approve", args: [multisend, 10n ** 30n] }),
    gas: 100_000n,
  },
]);
const recipients = Array.from({ length: 20 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}` as Address);
const multisendAbi = parseAbi(["function send(address token, address[] to, uint256[] amounts)"]);
const perTx = 500;
const batches: { to: Address; data: Hex; gas: bigint }[] = [];
for (let sent = 0; sent < BACKFILL; sent += perTx) {
  const n = Math.min(perTx, BACKFILL - sent);
  const to = Array.from({ length: n }, (_, i) => recipients[i % recipients.length]!);
  batches.push({
    to: multisend,
    data: encodeFunctionData({ abi: multisendAbi, functionName: "send", args: [contracts.husd, to, to.map(() => 1n)] }),
    gas: 20_000_000n,
  });
}
await sendAll(batches);
// Every transfer landed (a reverted batch would leave its recipients short): 1 base unit each.
const received = await Promise.all(
  recipients.map((r) =>
    clients.test.readContract({ address: contracts.husd, abi: husdAbi, functionName: "balanceOf", args: [r] }),
  ),
);
const landed = received.reduce((a, b) => a + b, 0n);
if (landed !== BigInt(BACKFILL)) throw new Error(`only ${landed} of ${BACKFILL} transfers landed on chain`);
const writeSeconds = (performance.now() - writeStarted) / 1000;
console.log(`wrote ${BACKFILL} transfers in ${batches.length} transactions in ${writeSeconds.toFixed(1)} s`);
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
const config = loadConfig({
  DATABASE_URL: bench.databaseUrl,
  RPC_URL: rpcUrl,
  CHAIN_ID: String(chainId),
  HUSD_ADDRESS: contracts.husd,
  DEPOSIT_FACTORY_ADDRESS: contracts.factory,
  FINALITY_CONFIRMATIONS: "3",
  PONDER_SCHEMA: "bench_live",
  LOG_LEVEL: "silent",
});
const chain = createChainClient(config);
const orgs: { id: string; address: Address }[] = [];
for (let i = 0; i < DEPOSITS; i++) {
  const org = await createOrganization(ctx, { name: `bench ${i}` });
  await createApiKey(ctx, { orgId: org.id, scope: "org" });
  orgs.push({
    id: org.id,
    address: (await depositAddressFor({ ...ctx, sql, chain, config }, { orgId: org.id })).address,
  });
}
const live = startPonder("bench_live", await port());
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const workers = await startWorkers({
  sql,
  connection: redis,
  prefix: bench.redisPrefix,
  logger: pino({ level: "silent" }),
  clock: () => new Date(),
  config,
  chain,
});
while ((await count("bench_live")) < expected) await new Promise((r) => setTimeout(r, 200)); // caught up

console.log(`sending ${DEPOSITS} deposits, one every ~0.7 s…`);
const sent: { org: string; block: bigint }[] = [];
// Watches the chain from before the first send: the moment each block becomes final by policy
// (finalized tag past it and 3 confirmations), seen by polling every 25 ms.
const finalAt = new Map<bigint, number>();
let sending = true;
const watcher = (async () => {
  for (;;) {
    const [finalized, latest] = await Promise.all([
      chain.getBlock({ blockTag: "finalized" }),
      chain.getBlockNumber({ cacheTime: 0 }),
    ]);
    const now = Date.now();
    for (const s of sent)
      if (!finalAt.has(s.block) && finalized.number! >= s.block && latest - s.block + 1n >= 3n)
        finalAt.set(s.block, now);
    if (!sending && sent.every((s) => finalAt.has(s.block))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
})();
for (const org of orgs) {
  const [hash] = await sendAll([
    {
      to: contracts.husd,
      data: encodeFunctionData({ abi: husdAbi, functionName: "transfer", args: [org.address, 10n ** 18n] }),
      gas: 100_000n,
    },
  ]);
  sent.push({ org: org.id, block: (await customer.getTransactionReceipt({ hash: hash! })).blockNumber });
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
  if (row?.credited_at && finalAt.has(s.block))
    latencies.push(Math.max(0, row.credited_at.getTime() - finalAt.get(s.block)!));
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
console.log(
  `backfill                         ${(expected / backfillSeconds).toFixed(0)} transfers/s (${expected} in ${backfillSeconds.toFixed(1)} s)`,
);
console.log(
  `writing the transfers            ${(BACKFILL / writeSeconds).toFixed(0)} transfers/s (${BACKFILL} in ${writeSeconds.toFixed(1)} s, ${batches.length} transactions)\n`,
);
console.log(
  JSON.stringify({
    finality_to_credit_p50_ms: pct(50),
    finality_to_credit_p95_ms: pct(95),
    backfill_transfers_per_s: Math.round(expected / backfillSeconds),
    deposits_credited: latencies.length,
    backfill_transfers: expected,
    write_seconds: Number(writeSeconds.toFixed(1)),
    write_transactions: batches.length,
  }),
);
process.exit(0);
