import { readFileSync } from "node:fs";

/**
 * The node flags an npm script of package.json gives its process (`start` for the API: V8's heap
 * sizing), so that tests and benches that run a bundle start it as deployed.
 */
export function npmScriptNodeFlags(script: "start" | "start:worker"): string[] {
  const scripts = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).scripts;
  return (scripts[script] as string).split(/\s+/).filter((word) => word.startsWith("--"));
}
