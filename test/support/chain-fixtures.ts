/**
 * Vitest fixtures for the chain tests, on top of test/support/fixtures.ts (`db`, `redis`):
 *
 * - `chain`: anvil on a free port with our HUSD and deposit factory deployed (chain-stack.ts),
 *   ready when it answers JSON-RPC; `chainOptions` (`blockTime`, `slotsInAnEpoch`) set it.
 * - `stack`: the API in process and the deposit workers (started by the test) on the file's
 *   database, Redis prefix and chain (deposit-stack.ts); `stackConfig` overrides its config.
 * - `indexer`: Ponder (bin/indexer.ts) as a child process on the chain and database, ready when
 *   its /ready answers 200.
 * - `anvil` and `clients` (from `anvilTest`): a bare anvil, for the contract tests that deploy
 *   their own contracts.
 *
 * All are file-scoped: anvil and Ponder take seconds to start, so a file starts them once, for
 * its first test that names them, and stops them after its last test. Options are set once per
 * file: `it.scoped({ dbOptions: { max: 12 }, chainOptions: { blockTime: 1 } })`.
 *
 * They start inside the timeout of the first test or hook that names them (a suite's `timeout` does
 * not reach tests made with `test.extend`): anvil with our contracts starts in a few seconds,
 * within a test's 30 s; a file that starts Ponder names `indexer` in a `beforeEach` with a longer
 * timeout. Readiness is waited on, never slept for. Every process here is also tracked by
 * test/support/process.ts: the `afterAll` of
 * test/support/process-cleanup.ts kills whatever is still running when the file ends, before these
 * fixtures are torn down (stopping a process already gone returns at once).
 */
import type { Config } from "../../src/config.js";
import { type AnvilInstance, startAnvil } from "./anvil.js";
import { createTestClients, type TestClients } from "./chain.js";
import { startIndexer, startTestChain, type TestChain } from "./chain-stack.js";
import { type DepositStack, depositStack } from "./deposit-stack.js";
import { type DbContext, withDatabase } from "./fixtures.js";
import type { RunningProcess } from "./process.js";

export type ChainOptions = NonNullable<Parameters<typeof startTestChain>[0]>;
export type StackConfig = Partial<Record<keyof Config, string>>;

export type ChainContext = DbContext & {
  chainOptions: ChainOptions;
  chain: TestChain;
  stackConfig: StackConfig;
  stack: DepositStack;
  indexer: RunningProcess & { port: number };
};

export type AnvilOptions = NonNullable<Parameters<typeof startAnvil>[0]>;
export type AnvilContext = DbContext & { anvilOptions: AnvilOptions; anvil: AnvilInstance; clients: TestClients };

/** `chain`, `stack` and `indexer`, each started when a test of the file first names it. */
export function withChain() {
  return withDatabase().extend<Omit<ChainContext, keyof DbContext>>({
    chainOptions: {},
    chain: [
      async ({ chainOptions }, use) => {
        const chain = await startTestChain(chainOptions);
        try {
          await use(chain);
        } finally {
          await chain.stop();
        }
      },
      { scope: "file" },
    ],
    stackConfig: {},
    stack: [
      async ({ db, chain, stackConfig }, use) => {
        const stack = depositStack(db, chain, stackConfig);
        try {
          await use(stack);
        } finally {
          await stack.close();
        }
      },
      { scope: "file" },
    ],
    indexer: [
      async ({ db, chain }, use) => {
        const indexer = await startIndexer(chain, db.appUrl);
        try {
          await use(indexer);
        } finally {
          await indexer.stop();
        }
      },
      { scope: "file" },
    ],
  });
}

/** `chain` (anvil with HUSD and the deposit factory), `stack` (API and workers on it), `indexer` (Ponder). */
export const chainTest = withChain();

/** `anvil`: a bare anvil for the file (`anvilOptions`: `blockTime`, `chainId`, `slotsInAnEpoch`); `clients`: viem wallet, public and test clients on it. */
export const anvilTest = withDatabase().extend<Omit<AnvilContext, keyof DbContext>>({
  anvilOptions: {},
  anvil: [
    async ({ anvilOptions }, use) => {
      const anvil = await startAnvil(anvilOptions);
      try {
        await use(anvil);
      } finally {
        await anvil.stop();
      }
    },
    { scope: "file" },
  ],
  clients: [async ({ anvil }, use) => use(createTestClients(anvil.rpcUrl)), { scope: "file" }],
});
