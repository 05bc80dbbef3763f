// Preloaded (`node --import ./bench/gc-trace.mjs`) into the API and the load generators when
// BENCH_TRACE_DIR is set (bench/support.ts): records every garbage collection of the process, as
// `<start, ms since the epoch> <duration ms> <kind>` lines, and writes them to
// $BENCH_TRACE_DIR/gc-<script>-<pid>.txt when it exits. bench/slow-waves.ts lays them beside each
// call's latency to see which pauses the slowest calls waited on.
import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";

const dir = process.env.BENCH_TRACE_DIR;
if (dir) {
  const lines = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      lines.push(
        `${(performance.timeOrigin + e.startTime).toFixed(3)} ${e.duration.toFixed(3)} ${e.detail?.kind ?? 0}`,
      );
  }).observe({ entryTypes: ["gc"] });
  const script = basename(process.argv[1] ?? "node").replace(/\.[^.]*$/, "");
  process.on("exit", () => writeFileSync(`${dir}/gc-${script}-${process.pid}.txt`, `${lines.join("\n")}\n`));
}
