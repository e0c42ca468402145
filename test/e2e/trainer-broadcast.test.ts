/**
 * Rank 0's state reaches every rank: two in-process replicas of the real trainer over the local
 * transport, where only rank 0 sees the run directory (no shared disk). After a resume, rank 1 must
 * hold rank 0's weights AND optimiser slots, or its next Adam update differs and the replica checksum
 * before the next checkpoint fails.
 */
import { horizontalFlip, imageExamples } from '../../src/data/examples.js';
import { mkdtempSync as mkdtempRaw, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { cornerTiles } from '../../src/data/corner-dataset.js';
import { Pipeline } from '../../src/data/pipeline.js';
import { MirroredStrategy } from '../../src/distributed/mirrored.js';
import { createLocalGroup } from '../../src/distributed/transport.js';
import { resolveWaeConfig } from '../../src/models/wae/config.js';
import { resolveProGanConfig } from '../../src/models/progan/config.js';
import { trainProgan } from '../../src/models/progan/run.js';
import { existsSync, readdirSync } from 'node:fs';
import { WaeObjective, waeArgsFromConfig } from '../../src/models/wae/objective.js';
import { openImages } from '../../src/models/wae/run.js';
import { train, type TrainResult } from '../../src/training/trainer.js';
import { silentLogger } from '../../src/util/logger.js';

const SEED = 9;
const dirs: string[] = [];
const tempDir = (p: string) => {
  const d = mkdtempRaw(join(tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const config = resolveWaeConfig({ preset: 'tiny', flags: { loop: { seed: SEED, batchSize: 2, steps: 6, checkpointEvery: 2, sampleEvery: 1000, tickEvery: 2 } } });

interface Replica {
  objective: WaeObjective;
  result: TrainResult;
}

/** Train two replicas up to `stopAfterStep`, rank r in runDirs[r]. */
async function runPair(runDirs: [string, string], stopAfterStep: number, resume: boolean): Promise<Replica[]> {
  const corners = cornerTiles((await openImages(config.data, 2 * config.wae.cornerResolution, SEED, silentLogger())).images);
  const group = createLocalGroup(2, { opTimeoutMs: 20_000 });
  const strategies = group.map((t) => new MirroredStrategy(t, { bucketBytes: 4096 }));
  const objectives = [0, 1].map(
    (rank) =>
      new WaeObjective({
        model: waeArgsFromConfig(config.wae, config.data.channels),
        kernel: config.loss.kernel,
        lambda: config.loss.lambda,
        optim: config.optim,
        // Different initial weights per rank: the broadcast after build must remove the difference.
        seed: SEED + rank,
      }),
  );
  const pipelines = [0, 1].map((rank) => new Pipeline(imageExamples(corners), { batchSize: 2, seed: SEED, rank, worldSize: 2, augment: config.data.flip ? [horizontalFlip()] : [], prefetch: 1 }));
  try {
    const results = await Promise.all(
      [0, 1].map((rank) =>
        train({
          objective: objectives[rank] as WaeObjective,
          pipeline: pipelines[rank] as Pipeline,
          loop: config.loop,
          runDir: runDirs[rank] as string,
          resume,
          strategy: strategies[rank],
          progress: false,
          handleSignals: false,
          stopAfterStep,
        }),
      ),
    );
    return [0, 1].map((r) => ({ objective: objectives[r] as WaeObjective, result: results[r] as TrainResult }));
  } finally {
    for (const p of pipelines) p.close();
    await Promise.all(strategies.map((s) => s.close()));
  }
}

async function modelState(o: WaeObjective): Promise<Float32Array[]> {
  return Promise.all(o.stateVariables().map(async ([, v]) => (await v.data()) as Float32Array));
}

async function optimizerState(o: WaeObjective): Promise<Array<{ name: string; data: number[] }>> {
  const out: Array<{ name: string; data: number[] }> = [];
  for (const phase of o.phases()) {
    for (const w of await phase.optimizer.getWeights()) {
      out.push({ name: w.name, data: Array.from(w.tensor.dataSync()) });
      if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
    }
  }
  return out;
}

describe('trainer: rank 0 state broadcast', () => {
  it('a resume where only rank 0 has the checkpoint continues exactly like an uninterrupted run', async () => {
    // Uninterrupted: 4 steps.
    const straight = await runPair([tempDir('bc-a0-'), tempDir('bc-a1-')], 4, false);
    // Interrupted at step 2, then resumed; rank 1's directory stays empty (only rank 0 writes).
    const chiefDir = tempDir('bc-b0-');
    const otherDir = tempDir('bc-b1-');
    const first = await runPair([chiefDir, otherDir], 2, false);
    for (const r of first) r.objective.dispose();
    const resumed = await runPair([chiefDir, otherDir], 4, true);
    try {
      expect(resumed.map((r) => r.result.resumedFrom)).toEqual([2, 2]);
      expect(resumed.map((r) => r.result.step)).toEqual([4, 4]);
      // Rank 1 got rank 0's Adam slots (moments and iteration count), not fresh ones.
      const opt0 = await optimizerState(resumed[0]!.objective);
      const opt1 = await optimizerState(resumed[1]!.objective);
      expect(opt1.length).toBeGreaterThan(1);
      expect(opt1.map((w) => w.name)).toEqual(opt0.map((w) => w.name));
      opt1.forEach((w, i) => expect(w.data).toEqual(opt0[i]!.data));
      // And the weights equal the uninterrupted run's, bitwise, on both ranks.
      const want = await modelState(straight[0]!.objective);
      for (const r of resumed) {
        const got = await modelState(r.objective);
        got.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(want[i]!)));
      }
    } finally {
      for (const r of [...straight, ...resumed]) r.objective.dispose();
    }
  }, 60_000);

  it('ProGAN: only rank 0 sees the run directory and the encoder it trains there; rank 1 trains from broadcasts', async () => {
    const config = resolveProGanConfig({
      preset: 'tiny',
      flags: {
        data: { syntheticCount: 32 },
        encoder: { steps: 3 },
        samples: { count: 2, evalCount: 0 },
        loop: { steps: 4, batchSize: 2, seed: SEED, checkpointEvery: 2, sampleEvery: 100, tickEvery: 2, evalEvery: 0 },
      },
    });
    const dirs = [tempDir('bc-g0-'), tempDir('bc-g1-')];
    const run = async (resume: boolean, steps: number) => {
      const group = createLocalGroup(2, { opTimeoutMs: 20_000 });
      const strategies = group.map((t) => new MirroredStrategy(t, { bucketBytes: 4096 }));
      try {
        return await Promise.all(
          [0, 1].map((rank) =>
            trainProgan({ config: { ...config, loop: { ...config.loop, steps } }, runDir: dirs[rank] as string, resume, strategy: strategies[rank], progress: false, handleSignals: false }),
          ),
        );
      } finally {
        await Promise.all(strategies.map((s) => s.close()));
      }
    };
    // The replica checksum before each checkpoint would throw if rank 1 held other weights.
    const first = await run(false, 4);
    expect(first.map((r) => r.step)).toEqual([4, 4]);
    expect(existsSync(join(dirs[0] as string, 'encoder', 'checkpoints'))).toBe(true);
    // Rank 1 wrote nothing: it got the encoder and every resume from rank 0.
    expect(readdirSync(dirs[1] as string)).toEqual([]);
    const more = await run(true, 6);
    expect(more.map((r) => [r.resumedFrom, r.step, r.trainedEncoder])).toEqual([
      [4, 6, false],
      [4, 6, false],
    ]);
  }, 60_000);
});
