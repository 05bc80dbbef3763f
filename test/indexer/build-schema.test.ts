import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSchema, type BuildIdentity } from "../../src/indexer-deploy/build-schema.js";
import { copyProject } from "./project-copy.js";

const identity: BuildIdentity = {
  chainId: 31337,
  genesisHash: "0x1111111111111111111111111111111111111111111111111111111111111111",
  husdAddress: "0xe9e32EF8aaECB68794Da3E1E9191b0a64CeC2c83",
  startBlock: 0,
  ponderVersion: "0.16.10",
};

/** The schema name changes whenever Ponder's build id would (and a little more often), never otherwise. */
describe("buildSchema", () => {
  let project: ReturnType<typeof copyProject>;
  let name: () => string;
  beforeAll(() => {
    project = copyProject();
    name = () => buildSchema(project.root, "husd_indexer", identity);
  });
  afterAll(() => project?.remove());

  it("is the views schema and ten hex digits, the same for the same inputs", () => {
    expect(name()).toMatch(/^husd_indexer_[0-9a-f]{10}$/);
    expect(name()).toBe(name());
  });

  it.each([
    ["a billing file", "src/billing/invoices.ts"],
    ["a nested file Ponder executes", "src/http/routes/admin/create-key.ts"],
    ["the handlers", "src/indexer/husd-transfer.ts"],
    ["the config", "ponder.config.ts"],
    ["the schema", "ponder.schema.ts"],
    ["an ABI", "abis/HUSD.ts"],
    ["a SQL file under src/ (not executed by Ponder: a superset is safe)", "src/db/functions/ledger.sql"],
  ])("changes with %s", (_what, path) => {
    const before = name();
    project.append(path, "// changed");
    expect(name()).not.toBe(before);
  });

  it("changes with a new file under src/", () => {
    const before = name();
    mkdirSync(join(project.root, "src/new-area"), { recursive: true });
    writeFileSync(join(project.root, "src/new-area/thing.ts"), "export const thing = 1;\n");
    expect(name()).not.toBe(before);
  });

  it("does not change with src/api/ (Ponder leaves it out of the build id) or files outside Ponder's root", () => {
    const before = name();
    project.append("src/api/index.ts", "// changed");
    project.append("bin/indexer.ts", "// changed");
    expect(name()).toBe(before);
  });

  it("changes with the chain, the contract, the start block and Ponder's version; not with the address's letter case", () => {
    const base = name();
    const other = (patch: Partial<BuildIdentity>) =>
      buildSchema(project.root, "husd_indexer", { ...identity, ...patch });
    expect(other({ chainId: 36963 })).not.toBe(base);
    expect(other({ genesisHash: `0x${"2".repeat(64)}` })).not.toBe(base);
    expect(other({ husdAddress: "0x0000000000000000000000000000000000000001" })).not.toBe(base);
    expect(other({ startBlock: 5 })).not.toBe(base);
    expect(other({ ponderVersion: "0.16.11" })).not.toBe(base);
    expect(other({ husdAddress: identity.husdAddress.toLowerCase() })).toBe(base);
  });
});
