import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// An attack on newId (src/ids.ts): ids start with the millisecond they were minted, so two
// API replicas minting in the same milliseconds share that prefix and differ only by the random
// tail. Four Node processes, started together behind a barrier, mint ids as fast as they can
// for the same stretch of milliseconds: no id may repeat, within or across processes.
const IDS = fileURLToPath(new URL("../../src/ids.ts", import.meta.url));
const PER_PROCESS = 150_000;
const PROCESSES = 4;

const SCRIPT = `
const { newId } = await import(${JSON.stringify(IDS)});
process.stdout.write("ready\\n");
process.stdin.once("data", (start) => {
  const at = Number(String(start).trim());
  while (Date.now() < at) {}
  const out = new Array(${PER_PROCESS});
  const first = Date.now();
  for (let i = 0; i < out.length; i++) out[i] = newId("hold");
  const last = Date.now();
  process.stdout.write(JSON.stringify({ first, last }) + "\\n" + out.join("\\n") + "\\n", () => process.exit(0));
});
`;

function mint(): {
  child: ChildProcess;
  ready: Promise<void>;
  done: Promise<{ first: number; last: number; ids: string[] }>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", SCRIPT], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const done = new Promise<{ first: number; last: number; ids: string[] }>((resolve, reject) => {
    const ids: string[] = [];
    let span: { first: number; last: number } | undefined;
    lines.on("line", (line) => {
      if (line === "ready") resolveReady();
      else if (span === undefined) span = JSON.parse(line) as { first: number; last: number };
      else ids.push(line);
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 && span ? resolve({ ...span, ids }) : reject(new Error(`minting process exited with ${code}`)),
    );
  });
  return { child, ready, done };
}

describe("ids minted by several processes in the same milliseconds", () => {
  it("never repeat", { timeout: 120_000 }, async () => {
    const procs = Array.from({ length: PROCESSES }, mint);
    try {
      await Promise.all(procs.map((p) => p.ready));
      const start = Date.now() + 200; // all start minting at the same millisecond
      for (const p of procs) p.child.stdin!.end(`${start}\n`);
      const results = await Promise.all(procs.map((p) => p.done));
      // They did overlap in time: every process minted in the same milliseconds as the others.
      const overlapFrom = Math.max(...results.map((r) => r.first));
      const overlapTo = Math.min(...results.map((r) => r.last));
      expect(overlapTo).toBeGreaterThanOrEqual(overlapFrom);
      const all = results.flatMap((r) => r.ids);
      expect(all).toHaveLength(PROCESSES * PER_PROCESS);
      for (const id of all.slice(0, 1000)) expect(id).toMatch(/^hold_[0-9A-Za-z]{20}$/);
      const prefixes = new Set(all.map((id) => id.slice(0, 13)));
      expect(prefixes.size).toBeLessThan(all.length / 100); // many ids per millisecond prefix
      const seen = new Set<string>();
      const dup: string[] = [];
      for (const id of all) {
        if (seen.has(id)) dup.push(id);
        seen.add(id);
      }
      expect(dup).toEqual([]);
      // Within a process, ids minted later never sort before earlier ones by their time part.
      for (const r of results)
        for (let i = 1; i < r.ids.length; i += 997)
          expect(r.ids[i - 1]!.slice(5, 13) <= r.ids[i]!.slice(5, 13)).toBe(true);
    } finally {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill();
    }
  });
});
