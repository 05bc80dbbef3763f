import { readFileSync } from "node:fs";

/**
 * node --import tsx bench/profile-top.ts <file.cpuprofile> [N]: where a V8 CPU profile's time went
 * (issue #19's "a profile"), as self time by function (top N, default 25) and by where the code
 * lives (our bundle, each package, Node's internals, garbage collection, idle).
 * Make one with BENCH_API_NODE_ARGS="--cpu-prof --cpu-prof-dir=<dir>" npm run bench:metering.
 */
type ProfileNode = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
};
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: bench/profile-top.ts <file.cpuprofile> [N]");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const top = Number.parseInt(topArg ?? "25", 10);

const nodeById = new Map(profile.nodes.map((n) => [n.id, n]));
const microsByNode = new Map<number, number>();
profile.samples.forEach((id, i) => {
  microsByNode.set(id, (microsByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});

/** Where a function's code lives: a package of node_modules, our build, Node itself, or V8's own. */
function placeOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1] as string;
  if (url.startsWith("node:")) return "node internals";
  if (url.includes("/dist/")) return "our bundle (dist)";
  return url.replace(/^file:\/\//, "");
}

const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
let total = 0;
for (const [id, micros] of microsByNode) {
  const { functionName, url, lineNumber } = (nodeById.get(id) as ProfileNode).callFrame;
  const name = functionName || "(anonymous)";
  const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, "$1/")}:${lineNumber + 1}` : "";
  const key = where ? `${name}  ${where}` : name;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  const place = placeOf(url, name);
  byPlace.set(place, (byPlace.get(place) ?? 0) + micros);
  total += micros;
}

const share = (micros: number) => `${((100 * micros) / total).toFixed(1).padStart(5)} %`;
const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
console.log(`${(total / 1e6).toFixed(1)} s sampled\n\nself time by where the code lives:`);
for (const [place, micros] of sorted(byPlace).slice(0, 15)) console.log(`${share(micros)}  ${place}`);
console.log(`\nself time by function (top ${top}):`);
for (const [fn, micros] of sorted(byFunction).slice(0, top)) console.log(`${share(micros)}  ${fn}`);
