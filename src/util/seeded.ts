import { Rng } from './random.js';

/**
 * Run `fn` with `Math.random` replaced by a seeded generator, then restore it.
 *
 * Why: tfjs-layers initialisers draw their seeds from `Math.random` when a layer has no explicit seed, so
 * building a network inside this makes its initial weights a function of `seed` alone — needed for
 * reproducible runs and for comparing N-process with 1-process training.
 */
export function withSeededMathRandom<T>(seed: number | string, fn: () => T): T {
  const original = Math.random;
  const rng = new Rng(`math-random/${seed}`);
  Math.random = () => rng.next();
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}
