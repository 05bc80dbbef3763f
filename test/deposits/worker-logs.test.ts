import { pino } from "pino";
import { describe, expect } from "vitest";
import { waitFor } from "../support/process.js";
import { chainTest as it } from "../support/chain-fixtures.js";

const HUSD = 10n ** 18n;

type LogLine = { level: number; msg: string; [k: string]: unknown };

/**
 * The workers with a real pino logger, every line captured: a healthy deposit must not produce
 * a single error-level line (a job result BullMQ cannot serialize fails every check after the
 * fact, and is logged and retried as a failure).
 */
describe("the deposit workers' logs on a healthy deposit", () => {
  it.scoped({ dbOptions: { max: 8 } });
  const lines: LogLine[] = [];

  it("seen → confirming → credited, through the queues, with no error-level line and plain-JSON job results", async ({
    chain,
    stack,
  }) => {
    const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
    const workers = await stack.startWorkers({ logger });
    const completed: unknown[] = [];
    const events = await import("bullmq").then(
      ({ QueueEvents }) =>
        new QueueEvents("husd-deposits", { connection: stack.redis.duplicate(), prefix: `{${stack.prefix}}` }),
    );
    events.on("completed", ({ returnvalue }) => completed.push(returnvalue));
    await events.waitUntilReady();
    try {
      const org = await stack.orgWithAddress("Quiet Co");
      const { hash } = await stack.sendHusd(org.address, 6n * HUSD);
      const res = await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: hash } });
      const id = res.json.deposits[0].id as string;
      await waitFor(async () => (await stack.deposits(org.orgKey))[0]?.state === "confirming", { what: "confirming" });
      await chain.mine(3);
      await waitFor(async () => (await stack.deposits(org.orgKey))[0]?.state === "credited", { what: "credited" });
      // Every check of it finished: none left waiting, active or delayed for a retry.
      await waitFor(
        async () => {
          const counts = await workers.queues.deposits.getJobCounts("waiting", "active", "delayed", "failed");
          return (counts.waiting ?? 0) + (counts.active ?? 0) + (counts.delayed ?? 0) + (counts.failed ?? 0) === 0;
        },
        { what: "deposit checks finished" },
      );

      expect(lines.some((l) => l.msg === "HUSD deposit credited" && l.deposit_id === id)).toBe(true); // the capture works
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
      // What BullMQ stored as each check's result (parsed back by QueueEvents): plain JSON.
      await waitFor(() => completed.some((r) => (r as { state?: string }).state === "credited"), {
        what: "a completed check that credited",
      });
      expect(completed).toContainEqual({ deposit_id: id, state: "credited", confirmations: expect.any(String) });
    } finally {
      await events.close();
    }
  });
});
