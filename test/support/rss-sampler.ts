import { Worker } from "node:worker_threads";

/** What an RssSampler saw: the peak VmRSS, how many samples, and the longest gap between two. */
export type RssSamples = { peakKb: number; samples: number; maxGapMs: number; firstKb: number };

// The sampler runs in a thread of its own, so a test busy reading a response on its main thread
// does not delay it: it reads /proc/<pid>/status every `intervalMs` (Atomics.wait sleeps) until
// told to stop, and writes what it saw into shared memory.
const SAMPLER = `
const { workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const { pid, intervalMs, shared } = workerData;
const state = new Int32Array(shared); // [stop, peakKb, samples, maxGapMs, firstKb]
let last = 0;
while (Atomics.load(state, 0) === 0) {
  let kb = 0;
  try {
    kb = Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync("/proc/" + pid + "/status", "utf8"))[1]);
  } catch {
    break; // the process is gone
  }
  const now = Date.now();
  if (last !== 0) Atomics.store(state, 3, Math.max(Atomics.load(state, 3), now - last));
  else Atomics.store(state, 4, kb);
  last = now;
  Atomics.store(state, 1, Math.max(Atomics.load(state, 1), kb));
  Atomics.add(state, 2, 1);
  Atomics.wait(state, 0, 0, intervalMs);
}
`;

/**
 * Samples a process' resident memory (VmRSS from /proc/<pid>/status, Linux) every `intervalMs`
 * from a worker thread until `stop()`, which resolves with the peak and how regular the samples were.
 */
export function sampleRss(pid: number, intervalMs = 50): { stop(): Promise<RssSamples> } {
  const shared = new SharedArrayBuffer(5 * Int32Array.BYTES_PER_ELEMENT);
  const state = new Int32Array(shared);
  const worker = new Worker(SAMPLER, { eval: true, workerData: { pid, intervalMs, shared } });
  const exited = new Promise<void>((resolve, reject) => {
    worker.once("exit", () => resolve());
    worker.once("error", reject);
  });
  return {
    async stop() {
      Atomics.store(state, 0, 1);
      Atomics.notify(state, 0);
      await exited;
      return { peakKb: state[1]!, samples: state[2]!, maxGapMs: state[3]!, firstKb: state[4]! };
    },
  };
}
