import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { getAddress, type Address } from "viem";
import { authenticate, createApiKey, createGatewayKey } from "../src/billing/api-keys.js";
import { readCatalogFile } from "../src/billing/catalog.js";
import { createBillingContext } from "../src/billing/context.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { grantCredits } from "../src/billing/grants.js";
import { createOrganization } from "../src/billing/organizations.js";
import { deployDevContracts, DevRoles, mintHusd, spawnAnvil, waitForRpc } from "../src/chain/local-devnet.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { ensureDatabase } from "../src/db/ensure-database.js";
import { migrate } from "../src/db/migrate.js";
import { randomBase62 } from "../src/ids.js";
import { checkServices } from "../src/ops/preflight.js";
import { startFakeProcessor } from "../dev/processor/server.js";
import { buildPortal } from "../scripts/portal-build.js";

/**
 * npm run dev: the whole stack on this machine in one command. PostgreSQL and Redis must be
 * running (it says how to start them if not); everything else is started here: anvil with
 * one-second blocks, our HUSD and deposit factory, migrations and the catalog, a demo org with
 * keys, then Ponder, the API and the workers with labelled logs. Ctrl-C stops them all.
 * A second run reuses the chain state, database, org and keys in .hanzo/.
 */
const ROOT = new URL("..", import.meta.url).pathname;
// DEV_STATE_DIR lets tests run a second, isolated stack without touching a developer's .hanzo/.
const STATE_DIR = process.env.DEV_STATE_DIR ?? `${ROOT}.hanzo`;
const STATE_FILE = `${STATE_DIR}/dev.json`;
const ANVIL_PORT = Number(process.env.DEV_ANVIL_PORT ?? 8545);
const API_PORT = Number(process.env.PORT ?? 3000);
const PONDER_PORT = Number(process.env.PONDER_PORT ?? 42069);
const CHAIN_ID = Number(process.env.CHAIN_ID ?? 36964); // Hanzo devnet's id, served by anvil
const PROCESSOR_PORT = Number(process.env.DEV_PROCESSOR_PORT ?? 12111);

type DevState = {
  api_url: string;
  docs_url: string;
  openapi_url: string;
  metrics_url: string;
  queues_url: string;
  ponder_url: string;
  rpc_url: string;
  chain_id: number;
  husd_address: Address;
  deposit_factory_address: Address;
  husd_start_block: number;
  database_url: string;
  redis_prefix: string;
  org_id: string;
  org_key: string;
  gateway_key: string;
  admin_key: string;
  customer_wallet: Address;
  customer_wallet_mnemonic_index: number;
  /** The fake card processor's URL, or null when STRIPE_SECRET_KEY points at a real processor account. */
  processor_url: string | null;
};

const previous: Partial<DevState> = existsSync(STATE_FILE) ? JSON.parse(readFileSync(STATE_FILE, "utf8")) : {};
const base = loadConfig();
// The API and workers log in as hanzo_app's member, the indexer as hanzo_indexer's; the setup
// below (migrations, which make those roles, the catalog, the demo org) runs as the owner.
const databaseUrl = base.DATABASE_URL;
const ownerUrl = base.DATABASE_OWNER_URL;
const children: { name: string; child: ChildProcess }[] = [];
let stopping = false;

function log(msg: string) {
  console.log(`\x1b[1m[dev]\x1b[0m ${msg}`);
}

// Lines each child has printed that say it is up (the summary waits for all of them).
const readyLines: Record<string, string> = { worker: '"msg":"workers started"' };
const ready = new Set<string>();

function labelled(name: string, child: ChildProcess, color: number) {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on("line", (line) => {
      const readyLine = readyLines[name];
      if (readyLine && line.includes(readyLine)) ready.add(name);
      console.log(`\x1b[${color}m[${name}]\x1b[0m ${line}`);
    });
  }
  child.on("exit", (code, signal) => {
    if (stopping) return;
    // Ctrl-C in a terminal signals the whole process group: children may stop before we hear it.
    const interrupted = signal === "SIGINT" || signal === "SIGTERM" || code === 130 || code === 0;
    log(`${name} exited (${signal ?? code}); stopping everything`);
    void shutdown(interrupted ? 0 : 1);
  });
  children.push({ name, child });
}

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  log("stopping…");
  // Reverse order: consumers first, the chain last (anvil writes its state on the way out).
  for (const { name, child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 8_000);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill("SIGTERM");
    });
    log(`${name} stopped`);
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

// 1. PostgreSQL and Redis, with the exact fix when missing.
// Checked as the owner, on the database every cluster has: the app's role and database may not exist yet.
const maintenanceUrl = new URL(ownerUrl);
maintenanceUrl.pathname = "/postgres";
const problems = await checkServices({ postgres: maintenanceUrl.toString(), redis: base.REDIS_URL });
if (problems.length > 0) {
  console.error(`npm run dev needs PostgreSQL and Redis running:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}

// 2. The chain: anvil with 1 s blocks, state kept in .hanzo so a second run continues the same chain.
mkdirSync(STATE_DIR, { recursive: true });
const rpcUrl = `http://127.0.0.1:${ANVIL_PORT}`;
log(`starting anvil on ${rpcUrl} (chain ${CHAIN_ID}, 1 s blocks)`);
const anvil = spawnAnvil({
  port: ANVIL_PORT,
  chainId: CHAIN_ID,
  blockTime: 1,
  slotsInAnEpoch: 1,
  statePath: `${STATE_DIR}/anvil-state.json`,
});
labelled("anvil", anvil, 90);
await waitForRpc(rpcUrl).catch((err) => {
  console.error(`anvil did not start: ${(err as Error).message}. Is port ${ANVIL_PORT} taken? Set DEV_ANVIL_PORT.`);
  return shutdown(1);
});

const contracts = await deployDevContracts(
  rpcUrl,
  CHAIN_ID,
  previous.husd_address && previous.deposit_factory_address && previous.chain_id === CHAIN_ID
    ? { husd: previous.husd_address, factory: previous.deposit_factory_address }
    : undefined,
);
const startBlock =
  previous.husd_address === contracts.husd ? (previous.husd_start_block ?? 0) : Number(contracts.deployBlock);
log(`HUSD ${contracts.husd}, deposit factory ${contracts.factory}`);

// 3. Database, catalog, demo organization and keys (reused when they still work).
await ensureDatabase(ownerUrl);
const sql = createSql(ownerUrl, { max: 2, applicationName: "hanzo-dev" });
await migrate(sql, { log });
const ctx = createBillingContext({ sql });
await loadCatalog(ctx, { file: await readCatalogFile() });
const adminKey = previous.admin_key ?? `hk-dev-admin-${randomBase62(24)}`;
let org = { id: previous.org_id, orgKey: previous.org_key, gatewayKey: previous.gateway_key };
const stillValid = async (key?: string) =>
  key
    ? authenticate(sql, key, undefined).then(
        () => true,
        () => false,
      )
    : false;
if (!org.id || !(await stillValid(org.orgKey)) || !(await stillValid(org.gatewayKey))) {
  const created = await createOrganization(ctx, { name: "Demo Org" });
  org = {
    id: created.id,
    orgKey: (await createApiKey(ctx, { orgId: created.id, scope: "org" })).key,
    gatewayKey: (await createGatewayKey(ctx, { name: "dev gateway" })).key,
  };
  log(`created demo organization ${org.id}`);
}
const demo = { id: org.id, orgKey: org.orgKey, gatewayKey: org.gatewayKey };
if (!demo.id || !demo.orgKey || !demo.gatewayKey) throw new Error("the demo organization has no id or keys");
await grantCredits(ctx, {
  orgId: demo.id,
  amount: 25_000_000_000n,
  reason: "Welcome credits",
  idempotencyKey: "dev-welcome",
});
await sql.end();
if (previous.husd_address !== contracts.husd)
  await mintHusd(rpcUrl, CHAIN_ID, contracts.husd, DevRoles.customer.address, 1_000n * 10n ** 18n);

// 4. The card processor: the development fake (dev/processor) unless STRIPE_SECRET_KEY is set, in
// which case the processor's own API is used and nothing else changes (its webhooks need
// STRIPE_WEBHOOK_SECRET and a way to reach this machine, e.g. `stripe listen --forward-to`).
const apiUrl = `http://127.0.0.1:${API_PORT}`;
const processor = base.STRIPE_SECRET_KEY
  ? null
  : await startFakeProcessor({
      port: PROCESSOR_PORT,
      webhookUrl: `${apiUrl}/v1/webhooks/processor`,
      webhookSecret: base.STRIPE_WEBHOOK_SECRET ?? `whsec_devfake${randomBase62(32)}`,
      webhookAttempts: 8,
      adoptUnknownCustomers: true,
    });
if (processor) log(`fake card processor on ${processor.url} (set STRIPE_SECRET_KEY to use a real test-mode account)`);
const processorEnv = processor
  ? {
      STRIPE_SECRET_KEY: `sk_test_devfake${randomBase62(24)}`,
      STRIPE_API_URL: processor.url,
      STRIPE_WEBHOOK_SECRET: base.STRIPE_WEBHOOK_SECRET ?? processor.webhookSecret,
    }
  : {};

const env = {
  ...process.env,
  ...processorEnv,
  NODE_ENV: "development",
  DATABASE_URL: databaseUrl,
  REDIS_PREFIX: process.env.REDIS_PREFIX ?? "hanzo-dev",
  RPC_URL: rpcUrl,
  CHAIN_ID: String(CHAIN_ID),
  // The portal's HUSD top-up adds the local chain to a browser wallet with these.
  CHAIN_NAME: process.env.CHAIN_NAME ?? "Hanzo Devnet (local)",
  CHAIN_PUBLIC_RPC_URL: process.env.CHAIN_PUBLIC_RPC_URL ?? rpcUrl,
  HUSD_ADDRESS: contracts.husd,
  HUSD_START_BLOCK: String(startBlock),
  DEPOSIT_FACTORY_ADDRESS: contracts.factory,
  FINALITY_CONFIRMATIONS: process.env.FINALITY_CONFIRMATIONS ?? "2",
  ADMIN_API_KEY: adminKey,
  PORT: String(API_PORT),
  PONDER_PORT: String(PONDER_PORT),
  // Ponder logs every block at info; in dev that drowns the other processes.
  PONDER_LOG_LEVEL: process.env.PONDER_LOG_LEVEL ?? "warn",
  // A newcomer's webhook receiver runs on this machine (http://127.0.0.1:PORT/…); private and
  // metadata addresses stay refused.
  WEBHOOK_ALLOW_LOCALHOST: process.env.WEBHOOK_ALLOW_LOCALHOST ?? "true",
};

// The billing portal's pages (Vite), which the API serves under /portal; skipped when up to date.
if (await buildPortal()) log("built the billing portal (dist/portal)");

// 5. The processes, each with its own label.
const node = (script: string) =>
  spawn(process.execPath, ["--import", "tsx", script], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
labelled("indexer", node("bin/indexer.ts"), 35);
labelled("worker", node("bin/worker.ts"), 33);
labelled("api", node("bin/api.ts"), 36);

// Ponder builds before it serves (about 70 s on a first run on a slow machine): say what is still
// starting every 10 s instead of going quiet.
const STARTUP_LIMIT_MS = 300_000;
const startedAt = Date.now();
let lastProgress = startedAt;
const answers = (url: string) =>
  fetch(url).then(
    (r) => r.ok,
    () => false,
  );
for (;;) {
  const [apiUp, indexerUp] = await Promise.all([
    answers(`${apiUrl}/readyz`),
    answers(`http://127.0.0.1:${PONDER_PORT}/ready`),
  ]);
  const waiting = [
    ...(apiUp ? [] : ["api"]),
    ...(ready.has("worker") ? [] : ["worker"]),
    ...(indexerUp ? [] : ["indexer (Ponder builds src/ first: about a minute on a first run)"]),
  ];
  if (waiting.length === 0) break;
  const elapsed = Date.now() - startedAt;
  if (elapsed > STARTUP_LIMIT_MS) {
    log(`not up after ${STARTUP_LIMIT_MS / 1000} s: ${waiting.join(", ")}; see its log lines above`);
    await shutdown(1);
  }
  if (Date.now() - lastProgress >= 10_000) {
    lastProgress = Date.now();
    log(`${Math.round(elapsed / 1000)} s: waiting for ${waiting.join(", ")}`);
  }
  await new Promise((r) => setTimeout(r, 250));
}

const state: DevState = {
  api_url: apiUrl,
  docs_url: `${apiUrl}/docs`,
  openapi_url: `${apiUrl}/v1/openapi.json`,
  metrics_url: `${apiUrl}/metrics`,
  queues_url: `${apiUrl}/admin/queues`,
  ponder_url: `http://127.0.0.1:${PONDER_PORT}`,
  rpc_url: rpcUrl,
  chain_id: CHAIN_ID,
  husd_address: getAddress(contracts.husd),
  deposit_factory_address: getAddress(contracts.factory),
  husd_start_block: startBlock,
  database_url: databaseUrl,
  redis_prefix: env.REDIS_PREFIX,
  org_id: demo.id,
  org_key: demo.orgKey,
  gateway_key: demo.gatewayKey,
  admin_key: adminKey,
  customer_wallet: DevRoles.customer.address,
  customer_wallet_mnemonic_index: 2,
  processor_url: processor?.url ?? null,
};
writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);

// A fresh billing portal link for the demo org (single use, 15 minutes): not kept in the state file.
const portalLink = await fetch(`${apiUrl}/v1/billing/portal-sessions`, {
  method: "POST",
  headers: { authorization: `Bearer ${state.org_key}` },
}).then(
  async (r) =>
    r.ok ? ((await r.json()) as { url: string }).url : `(could not make one: ${r.status} ${await r.text()})`,
  (err: Error) => `(could not make one: ${err.message})`,
);

console.log(`
\x1b[1mHanzo Billing is running.\x1b[0m  (state for scripts: ${STATE_FILE.replace(ROOT, "")})

  API        ${state.api_url}        docs ${state.docs_url}
  Metrics    ${state.metrics_url}   queues ${state.queues_url} (user any, password = admin key)
  Chain      ${state.rpc_url} (chain ${CHAIN_ID})   HUSD ${state.husd_address}
  Demo org   ${state.org_id}
  Keys       org ${state.org_key}
             gateway ${state.gateway_key}
             admin ${state.admin_key}
  Portal     ${portalLink}
             (opens once, within 15 minutes; another: curl -X POST ${apiUrl}/v1/billing/portal-sessions -H "Authorization: Bearer ${state.org_key}")

Try:
  curl ${apiUrl}/v1/billing/balance -H "Authorization: Bearer ${state.org_key}"
  curl ${apiUrl}/v1/pricing/models
  curl ${apiUrl}/v1/billing/authorize -H "Authorization: Bearer ${state.gateway_key}" -H "content-type: application/json" \\
       -d '{"org_id":"${state.org_id}","product":"llm","model":"zen-pro","estimate":{"input_tokens":1000,"output_tokens":500}}'

A card top-up${processor ? ` through the fake card processor (${processor.url})` : ""}: ask for a Checkout Session,
  curl -X POST ${apiUrl}/v1/billing/topups -H "Authorization: Bearer ${state.org_key}" -H "Idempotency-Key: demo-$RANDOM" \
       -H "content-type: application/json" -d '{"amount":"25.00","success_url":"http://localhost:${API_PORT}/docs","cancel_url":"http://localhost:${API_PORT}/docs"}'
  open its "url" in a browser and pay${processor ? ` (or: curl -X POST <url> -d card=4242424242424242; 4000000000000002 is declined)` : ""},
  then see it credited: curl ${apiUrl}/v1/billing/topups -H "Authorization: Bearer ${state.org_key}"

Then, in another terminal: npm run demo      Stop with Ctrl-C.
`);
