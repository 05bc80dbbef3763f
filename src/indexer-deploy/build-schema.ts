import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** What, besides the files, makes two indexer runs the same build: the chain and contract they index, and Ponder itself. */
export type BuildIdentity = {
  chainId: number;
  /** Hash of block 0: the same chain id on a fresh local chain (anvil restarted) is another chain. */
  genesisHash: string;
  husdAddress: string;
  startBlock: number;
  ponderVersion: string;
};

/**
 * The schema a build of the indexer writes to: `<viewsSchema>_<10 hex>`, a hash of every input
 * Ponder puts into its own build id, so that whenever Ponder would call a schema "previously used
 * by a different Ponder app" the name differs, and a restart of the same build resumes its schema.
 *
 * Ponder's build id covers ponder.config.ts (contracts, with their ABIs), ponder.schema.ts and
 * the text of every file it executes: all of `src/` except `src/api/`. We hash a superset: the
 * config, schema and abis/ files themselves, every file under `src/` but `src/api/` (whatever its
 * extension: a new schema too many costs a re-index from Ponder's cache, one too few stops the
 * indexer), the environment the config reads and the chain's identity, which Ponder leaves out.
 */
export function buildSchema(root: string, viewsSchema: string, identity: BuildIdentity): string {
  const files = [
    "ponder.config.ts",
    "ponder.schema.ts",
    ...filesUnder(root, "abis"),
    ...filesUnder(root, "src").filter((f) => !f.startsWith("src/api/")),
  ].sort();
  const hash = createHash("sha256");
  for (const file of files) {
    const contents = readFileSync(join(root, file));
    hash.update(`${file}\0${contents.length}\0`).update(contents);
  }
  hash.update(JSON.stringify({ ...identity, husdAddress: identity.husdAddress.toLowerCase() }));
  return `${viewsSchema}_${hash.digest("hex").slice(0, 10)}`;
}

/** Every file under `dir` (following symlinks, as Ponder's glob does), as POSIX paths relative to `root`. */
function filesUnder(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    const isDir = entry.isSymbolicLink() ? statSync(join(root, path)).isDirectory() : entry.isDirectory();
    if (isDir) out.push(...filesUnder(root, path));
    else out.push(path);
  }
  return out;
}
