/**
 * Retention through the real CLI path with a toy unit (a 1-parameter fit, cpu backend): `--keep N`
 * bounds the step checkpoints, the descriptor's `bestMetric` keeps the best evaluated checkpoint in
 * checkpoints/best/ apart from them, and `RUN/best` / `RUN/step-N` resolve.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../../src/cli/train.js';
import { runTrain } from '../../src/cli/run-train.js';
import { Pipeline, type ExampleDataset } from '../../src/data/pipeline.js';
import { MODELS } from '../../src/models/registry.js';
import { defineModel, type ModelTrainOptions } from '../../src/models/unit.js';
import { resolveCheckpoint } from '../../src/training/checkpoint.js';
import { LOOP_FLAGS, validateLoopAndAdam, type LoopConfig } from '../../src/training/config.js';
import type { Batch, Objective, Phase, PhaseResult } from '../../src/training/objective.js';
import { batchField } from '../../src/training/objective.js';
import { loopOptions } from '../../src/training/run-dir.js';
import { train } from '../../src/training/trainer.js';

interface FitConfig {
  model: 'fit';
  loop: LoopConfig;
}

const points: ExampleDataset = {
  size: 16,
  spec: { y: { shape: [], dtype: 'float32' } },
  get: async () => ({ y: Float32Array.of(2) }),
  name: (i) => `point#${i}`,
};

/** Fits w to 2 by SGD; its evaluation reports |w - 2| (lower is better) and, oddly, w itself. */
class FitObjective implements Objective {
  readonly name = 'fit';
  readonly w = tf.variable(tf.zeros([1]));
  private readonly phase: Phase = { name: 'fit', vars: [this.w], optimizer: tf.train.sgd(0.05) };
  phases(): Phase[] {
    return [this.phase];
  }
  stateVariables(): Array<[string, tf.Variable]> {
    return [['w', this.w]];
  }
  computeGradients(phase: Phase, batch: Batch): PhaseResult {
    const y = batchField<tf.Tensor1D>(batch, 'y', 1);
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(y, this.w))) as tf.Scalar, phase.vars);
      return { losses: { mse: value }, grads: phase.vars.map((v) => grads[v.name] as tf.Tensor) };
    });
  }
  async evaluate(): Promise<Record<string, number>> {
    const w = ((await this.w.data()) as Float32Array)[0] as number;
    return { 'fit/err': Math.abs(w - 2), 'fit/w': w };
  }
  dispose(): void {
    this.w.dispose();
  }
}

const fitModel = defineModel<FitConfig>({
  name: 'fit',
  summary: 'toy fit (tests only)',
  defaults: () => ({
    model: 'fit',
    loop: { steps: 20, batchSize: 4, seed: 1, checkpointEvery: 2, sampleEvery: 1000, tickEvery: 2, evalEvery: 4, maxNonFinite: 3, keepCheckpoints: 2 },
  }),
  presets: {},
  validate: (c) => validateLoopAndAdam(c.loop),
  bestMetric: { name: 'fit/err', mode: 'min' },
  flags: [...LOOP_FLAGS],
  load: async () => ({
    train: async (opts: ModelTrainOptions<FitConfig>) => {
      const objective = new FitObjective();
      const pipeline = new Pipeline(points, { batchSize: opts.config.loop.batchSize, seed: 1, prefetch: 1 });
      try {
        return await train({ objective, pipeline, loop: opts.config.loop, runDir: opts.runDir, resume: opts.resume ?? false, config: opts.config,
          handleSignals: false, progress: false, ...loopOptions(opts) });
      } finally {
        pipeline.close();
        objective.dispose();
      }
    },
  }),
});

describe('checkpoint retention', () => {
  it('--keep bounds the step checkpoints; the best-by-metric one is kept apart and resolves as RUN/best', async () => {
    const runDir = join(mkdtempSync(join(tmpdir(), 'proggan-best-')), 'run');
    const models = [...MODELS, fitModel];
    await runTrain(parseTrainArgs(['fit', '--run-dir', runDir, '--keep', '3', '--backend', 'cpu', '--log-level', 'error'], models), models);
    const names = readdirSync(join(runDir, 'checkpoints')).sort();
    expect(names).toEqual(['best', 'latest', 'step-00000016', 'step-00000018', 'step-00000020']);
    // The error falls every step, so the best evaluation is the last one (step 20).
    const evals = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>)
      .filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([0, 4, 8, 12, 16, 20]);
    const best = await resolveCheckpoint(join(runDir, 'best'));
    expect(best.state.step).toBe(20);
    expect(best.state.meta['best']).toEqual({ name: 'fit/err', mode: 'min', value: evals[5]?.['fit/err'] });
    expect((await resolveCheckpoint(join(runDir, 'step-16'))).state.step).toBe(16);
    // --keep 0 is refused when the config is resolved, before anything runs or is written.
    await expect(runTrain(parseTrainArgs(['fit', '--run-dir', `${runDir}-k0`, '--keep', '0', '--backend', 'cpu'], models), models)).rejects.toThrow(/keepCheckpoints: must be an integer >= 1 \(flag --keep\)/);
    expect(readdirSync(join(runDir, '..'))).toEqual(['run']);
  });
});
