import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["./test/support/global-setup.ts"],
    // Kills every process a test file started and left running, when that file ends.
    setupFiles: ["./test/support/process-cleanup.ts"],
    include: ["test/**/*.test.ts"],
    // Each file gets its own database, Redis prefix and anvil, so files run in parallel safely;
    // two workers match the two cores without starving PostgreSQL.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    restoreMocks: true,
  },
});
