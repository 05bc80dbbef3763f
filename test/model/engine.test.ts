import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { commandArbs, outcomes, type Real } from "./commands.js";
import { inProcessSystem, skipFlushWaits } from "./harness.js";
import { checkLedgerFor } from "./invariants.js";
import { Model } from "./model.js";
import { atLeast, modelSettings } from "./settings.js";

/**
 * The metering engine against its reference model (test/model/model.ts): random sequences of
 * grants, authorizations, settlements, usage, retries, clock moves, sweeps, cycle closes and
 * card refunds, through the real app on the real PostgreSQL. Each step's responses are
 * predicted by the model, and after each step balances, holds, grants and the ledger's
 * invariants are compared. One database for every run; each run has two new organizations.
 */
const { runs, seed, path, replayPath } = modelSettings(200);
const STEPS = { min: 30, max: 36 };

describe("metering engine: model-based", () => {
  let db: TestDatabase;
  let harness: ReturnType<typeof inProcessSystem>;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 6 });
    await skipFlushWaits(db);
    harness = inProcessSystem(db.sql);
  });
  afterAll(async () => {
    if (process.env.MODEL_STATS)
      console.log(
        [...outcomes]
          .sort()
          .map(([k, n]) => `${String(n).padStart(7)}  ${k}`)
          .join("\n"),
      );
    await db?.drop();
  });

  it(`${runs} sequences of ${STEPS.min}-${STEPS.max} steps agree with the model`, {
    timeout: 120_000 + runs * 2_000,
  }, async () => {
    console.log(`model: ${runs} runs, MODEL_SEED=${seed}${path ? ` MODEL_PATH=${path}` : ""}`);
    const sequences = atLeast(
      fc.commands([commandArbs({ sameBatch: true })], { maxCommands: STEPS.max, size: "max", replayPath }),
      STEPS.min,
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(sequences, async (cmds) => {
        const { orgs, tag } = await harness.newRun();
        const real: Real = { sys: harness.system, orgs, tag, seq: 0 };
        await fc.asyncModelRun(() => ({ model: new Model(harness.system.now().getTime(), orgs.length), real }), cmds);
        // checkLedger reads the whole ledger, which grows with every run: after each of the first
        // 200 runs, then every 20th (each step has already checked the same invariants for its orgs).
        if (++run > 200 && run % 20 !== 0) return;
        const problems = await checkLedgerFor(
          db.sql,
          orgs.map((o) => o.id),
        );
        if (problems.length > 0) throw new Error(`at the end of the run:\n  ${problems.join("\n  ")}`);
      }),
      { numRuns: runs, seed, path },
    );
  });
});
