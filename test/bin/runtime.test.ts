import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/process.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: { node: string } };
const pinned = `v${pkg.devDependencies.node}`;

/**
 * The npm `node` package in devDependencies puts its binary first on the PATH of every npm script
 * (node_modules/.bin), so `npm test`, `npm run dev` and the rest run on that Node whatever Node the
 * machine has; the processes our scripts start use process.execPath, the same binary.
 */
describe("the runtime is the Node pinned in devDependencies", () => {
  it("the test workers run on it", () => {
    expect(process.version).toBe(pinned);
  });

  it("npm scripts find it first on their PATH", () => {
    const env = execFileSync("npm", ["run", "--silent", "env"], { cwd: ROOT, encoding: "utf8" });
    const path = /^PATH=(.*)$/m.exec(env)?.[1];
    if (path === undefined) throw new Error(`no PATH in npm run env:\n${env}`);
    expect(path.split(delimiter)[0]).toBe(join(ROOT, "node_modules/.bin"));
    const version = execFileSync("node", ["-p", "process.version"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, PATH: path },
    });
    expect(version.trim()).toBe(pinned);
  });
});
