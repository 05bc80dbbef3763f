import { describe, expect, it } from "vitest";
import { GroupCommitter } from "../../src/billing/group-commit.js";

describe("GroupCommitter", () => {
  it("shares one write among requests that arrive together", async () => {
    const batches: number[][] = [];
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        batches.push(items);
        return items.map((i) => i * 2);
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    const results = await Promise.all([1, 2, 3, 4].map((i) => gc.submit(i)));
    expect(results).toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1, 2, 3, 4]]);
  });

  it("when the database refuses a batch, each item is written alone: only the bad one fails", async () => {
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        if (items.includes(13)) throw new Error("refused by the database");
        return items.map((i) => i);
      },
      { maxBatch: 100, maxInFlight: 2 },
    );
    const settled = await Promise.allSettled([1, 13, 3].map((i) => gc.submit(i)));
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe("refused by the database");
  });

  it("writes again, marked as such, every item of a failed batch, a batch of one too", async () => {
    // The failure may be an answer lost after the commit: only the second attempt, told it is
    // one (`again`), can look for what the first wrote.
    const writes: { items: number[]; again: boolean }[] = [];
    let failNext = true;
    const gc = new GroupCommitter<number, number>(
      async (items, again) => {
        writes.push({ items, again });
        if (failNext) {
          failNext = false;
          throw new Error("connection lost");
        }
        return items;
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    expect(await gc.submit(7)).toBe(7);
    expect(writes).toEqual([
      { items: [7], again: false },
      { items: [7], again: true },
    ]);
    failNext = true;
    writes.length = 0;
    expect(await Promise.all([1, 2].map((i) => gc.submit(i)))).toEqual([1, 2]);
    expect(writes).toEqual([
      { items: [1, 2], again: false },
      { items: [1], again: true },
      { items: [2], again: true },
    ]);
  });

  it("after a refused batch, the items are written again one at a time, in the batch's order", async () => {
    // The first item's lone write is the slow one: written in parallel, the second would finish
    // (and be decided) first, as a key's second use was once answered before its first.
    const written: number[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        if (items.length > 1) throw new Error("refused by the database");
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await new Promise((r) => setTimeout(r, items[0] === 1 ? 30 : 0));
        written.push(...items);
        concurrent--;
        return items;
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    const results = await Promise.all([1, 2, 3].map((i) => gc.submit(i)));
    expect(results).toEqual([1, 2, 3]);
    expect(written).toEqual([1, 2, 3]);
    expect(maxConcurrent).toBe(1);
  });
});
