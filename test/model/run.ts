/**
 * `npm run test:model -- --runs 5000 [--seed S] [--path P --replay R] [--concurrent]`: the
 * model-based test (or its concurrent mode) alone, as deep as asked. The options become the
 * MODEL_* variables the test reads (test/model/settings.ts); a failure prints all of them.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OPTIONS = { runs: "MODEL_RUNS", seed: "MODEL_SEED", path: "MODEL_PATH", replay: "MODEL_REPLAY" } as const;

const args = process.argv.slice(2);
const env: NodeJS.ProcessEnv = { ...process.env };
for (let i = 0; i < args.length; i++) {
  const [name, inline] = args[i]!.replace(/^--/, "").split("=", 2) as [string, string | undefined];
  if (name === "concurrent") continue;
  const variable = OPTIONS[name as keyof typeof OPTIONS];
  const value = inline ?? args[++i];
  if (!variable || value === undefined) {
    console.error(`usage: npm run test:model -- [--runs N] [--seed S] [--path P] [--replay R] [--concurrent]`);
    process.exit(2);
  }
  env[variable] = value;
}
const file = args.includes("--concurrent") ? "test/model/concurrent.test.ts" : "test/model/engine.test.ts";
const vitest = spawnSync(process.execPath, [`${ROOT}node_modules/vitest/vitest.mjs`, "run", file], {
  cwd: ROOT,
  env,
  stdio: "inherit",
});
process.exit(vitest.status ?? 1);
