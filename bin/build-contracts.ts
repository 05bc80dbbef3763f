import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ABIS_DIR, GENERATED_MARKER, ROOT, compileSources, renderAbis } from "../scripts/compile-contracts.js";

// `npm run contracts:build`: compiles contracts/*.sol and rewrites abis/. Files are only
// written when their contents change, and generated files whose contract no longer exists are
// removed (hand-written files in abis/, which lack the marker, are left alone).

const result = await compileSources();
for (const w of result.warnings) console.warn(w);

const dir = join(ROOT, ABIS_DIR);
await mkdir(dir, { recursive: true });
const files = renderAbis(result);

const changed: string[] = [];
for (const [name, contents] of Object.entries(files)) {
  const path = join(dir, name);
  const current = await readFile(path, "utf8").catch(() => null);
  if (current === contents) continue;
  await writeFile(path, contents);
  changed.push(name);
}

const removed: string[] = [];
for (const name of await readdir(dir)) {
  if (name in files || !name.endsWith(".ts")) continue;
  const contents = await readFile(join(dir, name), "utf8");
  if (!contents.startsWith(GENERATED_MARKER)) continue;
  await rm(join(dir, name));
  removed.push(name);
}

console.log(
  `compiled ${result.contracts.map((c) => c.name).join(", ")} with solc ${result.compiler}: ` +
    `${changed.length ? `wrote ${changed.join(", ")}` : "abis/ already up to date"}` +
    `${removed.length ? `; removed ${removed.join(", ")}` : ""}`,
);
