import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SOURCES = [join(ROOT, "src/portal"), join(ROOT, "client/openapi.d.ts")];
export const PORTAL_OUT_DIR = join(ROOT, "dist/portal");
const STAMP = join(PORTAL_OUT_DIR, ".source-hash");

async function files(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => null);
  if (!entries) return [path];
  const nested = await Promise.all(entries.map((e) => files(join(path, e.name))));
  return nested.flat().sort();
}

/** A hash of everything the build reads from this repository (the sources and the API's types). */
async function sourceHash(): Promise<string> {
  const hash = createHash("sha256");
  for (const source of SOURCES)
    for (const file of await files(source)) hash.update(relative(ROOT, file)).update(await readFile(file));
  return hash.digest("hex");
}

/**
 * Builds the billing portal (Vite) into dist/portal unless the last build there was of the same
 * sources: the tests' global setup and `npm run dev` call this, so a fresh clone builds once and
 * later runs skip it. Returns whether it built.
 */
export async function buildPortal(opts: { force?: boolean } = {}): Promise<boolean> {
  const want = await sourceHash();
  const have = await readFile(STAMP, "utf8").catch(() => "");
  if (!opts.force && have === want) return false;
  const { build } = await import("vite");
  await build({ configFile: join(ROOT, "src/portal/vite.config.ts"), logLevel: "warn" });
  await writeFile(STAMP, want);
  return true;
}
