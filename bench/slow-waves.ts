import { readdirSync, readFileSync, statSync } from "node:fs";

/**
 * node --import tsx bench/slow-waves.ts <BENCH_TRACE_DIR> [PostgreSQL log]
 *
 * Where the client's tail comes from. Reads what a bench:metering run with BENCH_TRACE_DIR left:
 * each call's start and latency as the load generator's users saw it (calls-<pid>.txt, the
 * largest file: the measured load) and every garbage collection of the API and of the load
 * generator (gc-*.txt, bench/gc-trace.mjs). With a PostgreSQL log written with
 * `BENCH_DB_SET=log_min_duration_statement=<ms>`, also the statements that took that long.
 *
 * The gateway's client sends the calls its users make together as one request, so calls come in
 * waves (same kind, started within 1.5 ms); a wave's latency is its slowest call's. For every wave
 * slower than BENCH_SLOW_MS (default 10) it prints what overlapped it, then counts them against
 * how often each kind of event overlaps any wave, which tells a cause from a coincidence.
 */
const [dir, pgLog] = process.argv.slice(2);
if (!dir) throw new Error("usage: bench/slow-waves.ts <BENCH_TRACE_DIR> [postgresql log]");
const SLOW_MS = Number(process.env.BENCH_SLOW_MS ?? 10);
const EARLY_MS = 500;

type Span = { start: number; ms: number };
type Wave = Span & { kind: string; calls: number };

const files = readdirSync(dir);
const callsFile = files
  .filter((f) => f.startsWith("calls-"))
  .sort((a, b) => statSync(`${dir}/${b}`).size - statSync(`${dir}/${a}`).size)[0];
if (!callsFile)
  throw new Error(`${dir} has no calls-<pid>.txt (run bench:metering with BENCH_TRACE_DIR and a client load)`);

const calls = lines(`${dir}/${callsFile}`)
  .map((l) => l.split(" "))
  .map(([start, kind, ms]) => ({ start: Number(start), kind: kind ?? "", ms: Number(ms) }))
  .sort((a, b) => a.start - b.start);
const waves: Wave[] = [];
for (const c of calls) {
  const last = waves.at(-1);
  if (last && last.kind === c.kind && c.start - last.start < 1.5) {
    last.ms = Math.max(last.ms, c.ms);
    last.calls++;
  } else waves.push({ start: c.start, ms: c.ms, kind: c.kind, calls: 1 });
}
const first = calls[0]?.start ?? 0;
const end = Math.max(...calls.map((c) => c.start + c.ms));
const inRun = (s: Span) => s.start < end && s.start + s.ms > first;

const gcOf = (prefix: string): Span[] =>
  files
    .filter((f) => f.startsWith(prefix))
    .flatMap((f) => lines(`${dir}/${f}`))
    .map((l) => l.split(" "))
    .map(([start, ms]) => ({ start: Number(start), ms: Number(ms) }))
    .filter(inRun);
const apiGc = gcOf("gc-api-");
const loadGc = gcOf("gc-load-generator-");
// `2026-12-04 04:39:12.345 UTC [pid] ... LOG:  duration: 6.123 ms  execute ...`: logged as it ends.
const statements: Span[] = pgLog
  ? lines(pgLog).flatMap((l) => {
      const m = /^(\S+ \S+) UTC .* duration: ([\d.]+) ms {2}execute/.exec(l);
      if (!m?.[1] || !m[2]) return [];
      const ms = Number(m[2]);
      return [{ start: Date.parse(`${m[1].replace(" ", "T")}Z`) - ms, ms }];
    })
  : [];
const pgInRun = statements.filter(inRun);

const overlapping = (w: Span, spans: Span[]) =>
  spans.filter((s) => s.start < w.start + w.ms && s.start + s.ms > w.start);
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const callMs = calls.map((c) => c.ms).sort((a, b) => a - b);
const waveMs = waves.map((w) => w.ms).sort((a, b) => a - b);
const f1 = (n: number) => n.toFixed(1);

console.log(`${callsFile}: ${calls.length} calls in ${waves.length} waves over ${f1((end - first) / 1000)} s`);
console.log(
  `calls p50 ${f1(pct(callMs, 50))} p90 ${f1(pct(callMs, 90))} p99 ${f1(pct(callMs, 99))} ms; waves p50 ${f1(pct(waveMs, 50))} p90 ${f1(pct(waveMs, 90))} p99 ${f1(pct(waveMs, 99))} ms`,
);
console.log(
  `in the run: ${apiGc.length} API collections (${f1(sum(apiGc))} ms), ${loadGc.length} load generator's (${f1(sum(loadGc))} ms)${pgLog ? `, ${pgInRun.length} logged statements` : ""}`,
);
const slow = waves.filter((w) => w.ms > SLOW_MS);
console.log(`\nwaves over ${SLOW_MS} ms: ${slow.length} (${slow.reduce((a, w) => a + w.calls, 0)} calls)`);
console.log("  at ms  call        ms  calls | API GC ms | load gen GC ms | PostgreSQL ms");
for (const w of slow)
  console.log(
    `${f1(w.start - first).padStart(7)}  ${w.kind.padEnd(10)}${f1(w.ms).padStart(5)}  ${String(w.calls).padStart(5)} | ${list(overlapping(w, apiGc))} | ${list(overlapping(w, loadGc))} | ${list(overlapping(w, pgInRun))}`,
  );

const share = (pred: (w: Wave) => boolean) => {
  const all = waves.filter(pred).length;
  const ofSlow = slow.filter(pred).length;
  return `${ofSlow} of ${slow.length} slow waves, ${((100 * all) / waves.length).toFixed(1)} % of all waves`;
};
console.log("\nslow waves that…");
console.log(`  started in the first ${EARLY_MS} ms:      ${share((w) => w.start - first < EARLY_MS)}`);
console.log(`  overlapped an API collection:        ${share((w) => overlapping(w, apiGc).length > 0)}`);
console.log(`  overlapped a load generator's:       ${share((w) => overlapping(w, loadGc).length > 0)}`);
if (pgLog) console.log(`  overlapped a logged statement:       ${share((w) => overlapping(w, pgInRun).length > 0)}`);
console.log(
  `  overlapped none of these, after it:  ${share((w) => w.start - first >= EARLY_MS && ![apiGc, loadGc, pgInRun].some((s) => overlapping(w, s).length > 0))}`,
);

function lines(path: string): string[] {
  return readFileSync(path, "utf8").split("\n").filter(Boolean);
}
function sum(spans: Span[]): number {
  return spans.reduce((a, s) => a + s.ms, 0);
}
function list(spans: Span[]): string {
  return (spans.map((s) => f1(s.ms)).join(" ") || "–").padEnd(9);
}
