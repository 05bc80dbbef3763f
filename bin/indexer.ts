import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createPublicClient, http } from "viem";
import { loadConfig } from "../src/config.js";

/**
 * Starts Ponder with the "views pattern": each build indexes into its own schema
 * (`<PONDER_SCHEMA>_<hash>`), and Ponder points stable views in `<PONDER_SCHEMA>` at it once it
 * is ready. Ponder refuses to reuse a schema for a different build or a different chain, so the
 * hash covers the indexer's code, its configuration and the chain's genesis block: a restart of
 * the same build on the same chain resumes, anything else starts a fresh schema.
 */
const config = loadConfig();
const root = new URL("..", import.meta.url).pathname;
const client = createPublicClient({ transport: http(config.RPC_URL, { retryCount: 10, retryDelay: 500 }) });
const genesis = await client.getBlock({ blockNumber: 0n });

const hash = createHash("sha256");
const files = ["ponder.config.ts", "ponder.schema.ts", "abis/HUSD.ts", ...readdirSync(join(root, "src/indexer")).map((f) => `src/indexer/${f}`)];
for (const file of files.sort()) hash.update(file).update(readFileSync(join(root, file)));
hash.update(JSON.stringify([config.CHAIN_ID, config.HUSD_ADDRESS.toLowerCase(), config.HUSD_START_BLOCK, genesis.hash]));
const schema = `${config.PONDER_SCHEMA}_${hash.digest("hex").slice(0, 10)}`;

const ponderBin = join(root, "node_modules/ponder/dist/esm/bin/ponder.js");
const port = String(process.env.PONDER_PORT ?? 42069);
const logLevel = process.env.PONDER_LOG_LEVEL ?? "info";
const args = [ponderBin, "--log-level", logLevel, "start", "--schema", schema, "--views-schema", config.PONDER_SCHEMA, "--port", port];
console.log(`indexer: ponder start --schema ${schema} --views-schema ${config.PONDER_SCHEMA}`);
// Ponder prefers $PORT over --port; the API's PORT must not leak into it.
const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit", env: { ...process.env, PORT: port } });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
