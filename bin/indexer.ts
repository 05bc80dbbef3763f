import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createPublicClient, http } from "viem";
import { createSql } from "../src/db/client.js";
import { buildSchema } from "../src/indexer-deploy/build-schema.js";
import { pruneBuilds } from "../src/indexer-deploy/prune-builds.js";
import { shareViews } from "../src/indexer-deploy/share-views.js";
import { redactUrl } from "../src/chain/redact.js";
import { createLogger } from "../src/observability/logger.js";
import { checkDatabase, exitWithProblems, loadConfigOrExit, preflightOrExit } from "../src/ops/preflight.js";

/**
 * Starts Ponder as Ponder deploys itself: each build indexes into its own schema
 * (`<PONDER_SCHEMA>_<hash>`, the hash of everything Ponder puts into its build id plus the chain;
 * see buildSchema), Ponder points the stable views in `<PONDER_SCHEMA>` at it once it is ready
 * (until then they keep showing the previous build), a new build re-indexes from Ponder's RPC
 * cache (`ponder_sync`) rather than the node, and a restart of the same build resumes its schema.
 * Once ready, schemas of builds older than the previous one are dropped.
 */
const config = loadConfigOrExit("indexer");
// Ponder keeps its own schemas: the database must exist, not carry our migrations.
await preflightOrExit("indexer", [
  checkDatabase(config.INDEXER_DATABASE_URL, { migrated: false, variable: "INDEXER_DATABASE_URL" }),
]);
const logger = createLogger("indexer", config.LOG_LEVEL);
// bin/ in development, dist/ in the production build: either way the repository is one level up,
// and Ponder builds from its src/, ponder.config.ts and ponder.schema.ts.
const root = new URL("..", import.meta.url).pathname;
const startedAt = Date.now();
const client = createPublicClient({ transport: http(config.RPC_URL, { retryCount: 3, retryDelay: 500 }) });
const genesis = await client
  .getBlock({ blockNumber: 0n })
  .catch((err: Error) =>
    exitWithProblems("indexer", [
      `RPC_URL: no JSON-RPC answer at ${redactUrl(config.RPC_URL)} (${redactUrl(err.message.split("\n")[0] ?? "")}); start the node (npm run dev starts anvil) or set RPC_URL`,
    ]),
  );
const ponderVersion = (
  JSON.parse(readFileSync(join(root, "node_modules/ponder/package.json"), "utf8")) as { version: string }
).version;
const schema = buildSchema(root, config.PONDER_SCHEMA, {
  chainId: config.CHAIN_ID,
  genesisHash: genesis.hash,
  husdAddress: config.HUSD_ADDRESS,
  startBlock: config.HUSD_START_BLOCK,
  ponderVersion,
});

const ponderBin = join(root, "node_modules/ponder/dist/esm/bin/ponder.js");
const port = String(process.env.PONDER_PORT ?? 42069);
// Loopback by default, like the API: Ponder's own default is every interface.
const hostname = process.env.PONDER_HOST ?? "127.0.0.1";
const probeHost = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname;
const ponderUrl = `http://${probeHost.includes(":") ? `[${probeHost}]` : probeHost}:${port}`;
const logLevel = process.env.PONDER_LOG_LEVEL ?? "info";
const args = [
  ponderBin,
  "--log-level",
  logLevel,
  "start",
  "--schema",
  schema,
  "--views-schema",
  config.PONDER_SCHEMA,
  "--port",
  port,
  "--hostname",
  hostname,
];
logger.info(
  { schema, views_schema: config.PONDER_SCHEMA },
  `ponder start --schema ${schema} --views-schema ${config.PONDER_SCHEMA}`,
);
// Ponder and the pruning connect as a member of hanzo_indexer (INDEXER_DATABASE_URL).
const sql = createSql(config.INDEXER_DATABASE_URL, { max: 1, applicationName: "hanzo-indexer" });
await shareViews(sql, config.PONDER_SCHEMA);
let ready = false;
let stopping = false;
let ponder = startPonder(1);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    stopping = true;
    ponder.kill(signal);
  });
}

/**
 * Ponder gives each file under src/ 10 s to execute, and it executes all of them (workers, HTTP,
 * billing: whatever they import); on a loaded host one can miss that and the build fails. That
 * failure, and only that one, is worth another attempt.
 */
function startPonder(attempt: number): ChildProcess {
  // Ponder prefers $PORT over --port; the API's PORT must not leak into it.
  const child = spawn(process.execPath, args, {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PORT: port },
  });
  let tail = "";
  // Ponder prints the RPC URL (in errors and warnings); a provider's key in it must never reach
  // the logs, so its output is passed on line by line with URLs redacted.
  const flushes: (() => void)[] = [];
  const forward = (to: NodeJS.WriteStream) => {
    let partial = "";
    flushes.push(() => partial && to.write(redactUrl(partial)));
    return (chunk: Buffer) => {
      const text = partial + String(chunk);
      const end = text.lastIndexOf("\n") + 1;
      partial = text.slice(end);
      if (end > 0) to.write(redactUrl(text.slice(0, end)));
      tail = (tail + String(chunk)).slice(-4_000);
    };
  };
  child.stdout.on("data", forward(process.stdout));
  child.stderr.on("data", forward(process.stderr));
  child.on("close", (code, signal) => {
    for (const flush of flushes) flush();
    if (!stopping && !ready && code !== 0 && attempt < 3 && tail.includes("File execution did not complete")) {
      logger.warn({ schema, attempt }, "ponder timed out executing a file of the build; starting it again");
      ponder = startPonder(attempt + 1);
      return;
    }
    process.exit(code ?? (signal ? 1 : 0));
  });
  return child;
}

// Until the build is ready the views show the previous build, frozen: log how far behind it is.
// (A client that gives up at once: the log is skipped, never the readiness check behind it.)
const progressClient = createPublicClient({ transport: http(config.RPC_URL, { retryCount: 0, timeout: 2_000 }) });
const PROGRESS_EVERY_MS = 5_000;
let lastProgress = Date.now();
for (;;) {
  ready = await ponderReady();
  if (ready) break;
  await new Promise((r) => setTimeout(r, 250));
  if (Date.now() - lastProgress < PROGRESS_EVERY_MS) continue;
  lastProgress = Date.now();
  const [indexed, head] = await Promise.all([indexedBlock(), progressClient.getBlockNumber().catch(() => undefined)]);
  logger.info(
    {
      schema,
      indexed_block: indexed,
      chain_head: head === undefined ? undefined : Number(head),
      lag_blocks: indexed !== undefined && head !== undefined ? Number(head) - indexed : undefined,
      seconds: Math.round((Date.now() - startedAt) / 1000),
    },
    "indexer backfilling: until this build is ready the views keep the last ready build's rows",
  );
}
logger.info({ schema, seconds: (Date.now() - startedAt) / 1000 }, "indexer ready: the views show this build");

// Pruned now, and again every 10 s for two minutes: in an overlapping deploy the old indexer is
// stopped only once this build is ready, and its schema (and an older one whose indexer's lock
// is still fresh) can go only when no indexer runs it any more (60 s without a heartbeat).
const PRUNE_EVERY_MS = 10_000;
const PRUNE_RUNS = 13;
for (let run = 0; run < PRUNE_RUNS && !stopping; run++) {
  if (run > 0) await new Promise((resolve) => setTimeout(resolve, PRUNE_EVERY_MS).unref());
  try {
    const pruned = await pruneBuilds(sql, { viewsSchema: config.PONDER_SCHEMA, current: schema });
    if (pruned.dropped.length > 0) logger.info(pruned, "dropped the schemas of old builds");
    else if (run === 0) logger.info(pruned, "no old builds to drop");
  } catch (err) {
    // Housekeeping only: the indexer keeps indexing; the next run or start tries again.
    logger.error({ err }, "pruning old builds failed");
  }
}
await sql.end({ timeout: 5 });

async function ponderReady(): Promise<boolean> {
  try {
    return (await fetch(`${ponderUrl}/ready`)).status === 200;
  } catch {
    return false; // Ponder's server starts only after its build
  }
}

async function indexedBlock(): Promise<number | undefined> {
  try {
    const status = (await (await fetch(`${ponderUrl}/status`)).json()) as Record<
      string,
      { block?: { number: number } }
    >;
    return Object.values(status)[0]?.block?.number;
  } catch {
    return undefined;
  }
}
