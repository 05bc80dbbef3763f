import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ABIS_DIR, GENERATED_MARKER, ROOT, compileContracts } from "../../scripts/compile-contracts.js";

const HINT = "abis/ is stale: run npm run contracts:build and commit the result";
// solc compiles in this process and is CPU-bound: a few seconds on a quiet machine, many times
// that beside a loaded test run, so these tests get room rather than the default timeout.
const COMPILE_TIMEOUT_MS = 240_000;

describe("abis/", { timeout: COMPILE_TIMEOUT_MS }, () => {
  it("matches what npm run contracts:build writes from contracts/", async () => {
    const expected = await compileContracts();
    const dir = join(ROOT, ABIS_DIR);
    for (const [name, contents] of Object.entries(expected)) {
      const actual = await readFile(join(dir, name), "utf8").catch(() => null);
      expect(actual, `${HINT} (abis/${name} ${actual === null ? "is missing" : "differs"})`).toBe(contents);
    }
    // A generated file for a contract that no longer exists is stale too.
    for (const name of await readdir(dir)) {
      if (name in expected) continue;
      const contents = await readFile(join(dir, name), "utf8");
      expect(contents.startsWith(GENERATED_MARKER), `${HINT} (abis/${name} has no contract any more)`).toBe(false);
    }
  });

  it("is deterministic: two compilations render byte-identical files", async () => {
    expect(await compileContracts()).toEqual(await compileContracts());
  });
});
