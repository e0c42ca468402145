/**
 * "Adding a model = its folder + one registry line": a 1-layer linear regression unit, declared only
 * here, trained through the real CLI path (parseTrainArgs -> runTrain -> descriptor.load() -> the one
 * trainer), resumed from its run directory by `--resume` alone, with a statistic it reports through
 * the global `report()` reaching stats.jsonl.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../../src/cli/train.js';
import { runTrain } from '../../src/cli/run-train.js';
import { Pipeline, type ExampleDataset } from '../../src/data/pipeline.js';
import { MODELS } from '../../src/models/registry.js';
import { defineModel, type ModelTrainOptions } from '../../src/models/unit.js';
import { LOOP_FLAGS, type LoopConfig } from '../../src/training/config.js';
import { batchField, type Batch, type Objective, type Phase, type PhaseResult } from '../../src/training/objective.js';
import { report } from '../../src/training/stats.js';
import { train } from '../../src/training/trainer.js';
import { UsageError } from '../../src/util/errors.js';

interface LinRegConfig {
  model: 'linreg';
  data: { count: number };
  optim: { lr: number };
  loop: LoopConfig;
}

/** y = 3 x0 - 2 x1 + 0.5, on a fixed grid of x. */
function points(count: number): ExampleDataset {
  const x = (i: number) => [((i % 8) - 3.5) / 4, (Math.floor(i / 8) % 8 - 3.5) / 4] as const;
  return {
    size: count,
    spec: { x: { shape: [2], dtype: 'float32' }, y: { shape: [], dtype: 'float32' } },
    get: async (i) => {
      const [a, b] = x(i);
      return { x: Float32Array.of(a, b), y: Float32Array.of(3 * a - 2 * b + 0.5) };
    },
    name: (i) => `point#${i}`,
  };
}

class LinRegObjective implements Objective {
  readonly name = 'linreg';
  readonly w = tf.variable(tf.zeros([2, 1]));
  readonly b = tf.variable(tf.zeros([1]));
  private readonly phase: Phase;
  constructor(lr: number) {
    this.phase = { name: 'fit', vars: [this.w, this.b], optimizer: tf.train.sgd(lr) };
  }
  phases(): Phase[] {
    return [this.phase];
  }
  stateVariables(): Array<[string, tf.Variable]> {
    return [['w', this.w], ['b', this.b]];
  }
  computeGradients(phase: Phase, batch: Batch): PhaseResult {
    const x = batchField<tf.Tensor2D>(batch, 'x', 2);
    const y = batchField<tf.Tensor1D>(batch, 'y', 1);
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, tf.add(tf.reshape(tf.matMul(x, this.w), [-1]), this.b)) as tf.Scalar, phase.vars);
      return { losses: { mse: value }, grads: phase.vars.map((v) => grads[v.name] as tf.Tensor) };
    });
  }
  afterStep(): void {
    report('toy/w0', (this.w.dataSync() as Float32Array)[0] as number);
  }
  dispose(): void {
    tf.dispose([this.w, this.b]);
  }
}

/** The toy unit's descriptor: what src/models/linreg/index.ts would export. */
const linregModel = defineModel<LinRegConfig>({
  name: 'linreg',
  summary: 'toy linear regression (tests only)',
  defaults: () => ({
    model: 'linreg',
    data: { count: 64 },
    optim: { lr: 0.2 },
    loop: { steps: 40, batchSize: 8, seed: 1, checkpointEvery: 20, sampleEvery: 1000, tickEvery: 10, evalEvery: 0, maxNonFinite: 3, keepCheckpoints: 2 },
  }),
  presets: { tiny: { loop: { steps: 20 } } },
  validate: (c) => {
    if (!(c.optim.lr > 0)) throw new UsageError(`--lr: must be > 0, got ${c.optim.lr}`);
  },
  flags: [...LOOP_FLAGS, { name: 'lr', path: 'optim.lr', type: 'number', describe: 'learning rate' }],
  load: async () => ({
    train: async (opts: ModelTrainOptions<LinRegConfig>) => {
      const { config } = opts;
      const objective = new LinRegObjective(config.optim.lr);
      const pipeline = new Pipeline(points(config.data.count), { batchSize: config.loop.batchSize, seed: config.loop.seed, prefetch: 1 });
      try {
        return await train({ objective, pipeline, loop: config.loop, runDir: opts.runDir, resume: opts.resume ?? false, config, handleSignals: false, progress: false, ...(opts.strategy ? { strategy: opts.strategy } : {}) });
      } finally {
        pipeline.close();
        objective.dispose();
      }
    },
  }),
});

/** The registry with the toy unit added: the "one line". */
const models = [...MODELS, linregModel];

function statsLines(runDir: string): Array<Record<string, number>> {
  return readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

describe('a model registered only in a test', () => {
  it('is listed, parsed, trained, resumed and reports stats through the generic path', async () => {
    const runDir = join(mkdtempSync(join(tmpdir(), 'proggan-toy-')), 'run');
    const req = parseTrainArgs(['linreg', '--preset', 'tiny', '--run-dir', runDir, '--lr', '0.3', '--backend', 'cpu', '--log-level', 'error'], models);
    expect(req.flags).toEqual({ optim: { lr: 0.3 } });
    // Flags of another model are refused by name; unknown models are not accepted.
    expect(() => parseTrainArgs(['linreg', '--mmd-kernel', 'rbf'], models)).toThrow(/--mmd-kernel applies to `proggan train wae`, not linreg/);
    expect(() => parseTrainArgs(['linreg'])).toThrow(/linreg/);

    await runTrain(req, models);
    const first = statsLines(runDir).filter((r) => r['kind'] === undefined);
    expect(first.map((r) => r['step'])).toEqual([10, 20]);
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'))).toMatchObject({ model: 'linreg', optim: { lr: 0.3 }, loop: { steps: 20 } });
    // report() from the objective reached the tick records.
    expect(typeof first[1]?.['toy/w0']).toBe('number');
    expect(first[1]?.['loss/mse']).toBeLessThan(first[0]?.['loss/mse'] as number);

    // --resume alone finds the model in config.json.
    const again = parseTrainArgs(['--resume', '--run-dir', runDir, '--steps', '60', '--backend', 'cpu', '--log-level', 'error'], models);
    expect(again.model).toBe('linreg');
    await runTrain(again, models);
    const all = statsLines(runDir).filter((r) => r['kind'] === undefined);
    expect(all.map((r) => r['step'])).toEqual([10, 20, 30, 40, 50, 60]);
    expect(all[5]?.['loss/mse']).toBeLessThan(0.01);
    expect(all[5]?.['toy/w0']).toBeCloseTo(3, 1);
    expect(existsSync(join(runDir, 'checkpoints'))).toBe(true);
  });
});
