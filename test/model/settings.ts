import fc from "fast-check";

/**
 * How the model tests run: `MODEL_RUNS` sequences (default 200), from `MODEL_SEED` (default
 * random, always printed). A failure prints its seed, its `path` and the commands with their
 * `replayPath`: MODEL_SEED, MODEL_PATH and MODEL_REPLAY replay that counterexample at once.
 * `npm run test:model -- --runs 5000 [--seed S --path P --replay R]` sets them. MODEL_TRACE=1
 * prints each command as it passes, MODEL_STATS=1 how often each outcome came up.
 */
export function modelSettings(defaultRuns: number) {
  const runs = Number(process.env.MODEL_RUNS ?? defaultRuns);
  const seed = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) : (Math.random() * 2 ** 31) | 0;
  const path = process.env.MODEL_PATH || undefined;
  const replayPath = process.env.MODEL_REPLAY || undefined;
  return { runs, seed, path, replayPath };
}

/**
 * `fc.commands` generates anything from 0 to `max` commands; this keeps only sequences of at
 * least `min` when generating, and leaves shrinking alone, so a counterexample still shrinks
 * to the few commands that matter.
 */
export function atLeast<T>(arb: fc.Arbitrary<Iterable<T>>, min: number): fc.Arbitrary<Iterable<T>> {
  return new (class extends fc.Arbitrary<Iterable<T>> {
    generate(mrng: fc.Random, bias: number | undefined): fc.Value<Iterable<T>> {
      for (let tries = 0; tries < 10_000; tries++) {
        const value = arb.generate(mrng, bias);
        if ([...value.value_].length >= min) return value;
      }
      throw new Error(`no sequence of ${min} commands in 10,000 tries: give fc.commands size "max"`);
    }
    canShrinkWithoutContext(value: unknown): value is Iterable<T> {
      return arb.canShrinkWithoutContext(value);
    }
    shrink(value: Iterable<T>, context: unknown): fc.Stream<fc.Value<Iterable<T>>> {
      return arb.shrink(value, context);
    }
  })();
}
