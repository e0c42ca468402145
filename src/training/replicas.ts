/**
 * The tensor side of the distribution seam: the trainer's model state and gradients as the
 * Float32Arrays a {@link Strategy} reduces, broadcasts and compares. Every function is the identity
 * for one replica, so the trainer never branches on the number of processes.
 */
import * as tf from '@tensorflow/tfjs';
import { checkInSync, reduceSumsAndCounts, shareFromRoot, type Strategy } from '../distributed/strategy.js';
import type { Objective } from './objective.js';
import { summarize, type Stats, type StatsBuffers, type TickRecord } from './stats.js';
import { assignValues, readValues } from './variables.js';

/** A named tensor as optimisers save and load their slots. */
type NamedTensor = Awaited<ReturnType<tf.Optimizer['getWeights']>>[number];

/** Average gradients over the replicas (the identity for one); disposes the given tensors when it replaces them. */
export async function reduceGradients(strategy: Strategy, grads: tf.Tensor[]): Promise<tf.Tensor[]> {
  if (strategy.worldSize === 1) return grads;
  const buffers = await Promise.all(grads.map(async (g) => new Float32Array((await g.data()) as Float32Array)));
  await strategy.allReduceMean(buffers);
  const out = grads.map((g, i) => tf.tensor(buffers[i] as Float32Array, g.shape, 'float32'));
  tf.dispose(grads);
  return out;
}

/** Name, shape and dtype of one optimiser slot, as rank 0 holds it. */
interface SlotSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

/**
 * Make every rank hold rank 0's model state and the slots of the current phases' optimisers (Adam
 * moments and iteration counts): after a fresh build this removes any difference in initialisation,
 * after a resume it hands rank 0's checkpoint to ranks that may not see the same disk.
 */
export async function broadcastState(strategy: Strategy, objective: Objective): Promise<void> {
  if (strategy.worldSize === 1) return;
  const vars = objective.stateVariables().map(([, v]) => v);
  const phases = objective.phases();
  const slots: NamedTensor[][] = [];
  for (const phase of phases) slots.push(await phase.optimizer.getWeights());
  try {
    const mine: SlotSpec[][] = slots.map((ws) => ws.map((w) => ({ name: w.name, shape: w.tensor.shape.slice(), dtype: w.tensor.dtype === 'int32' ? 'int32' : 'float32' })));
    const specs = await shareFromRoot(strategy, mine);
    if (specs.length !== phases.length) throw new Error(`rank 0 has ${specs.length} training phases, rank ${strategy.rank} has ${phases.length}: the ranks run different configs`);
    const buffers = await readValues(vars);
    const slotBuffers = specs.map((ss, p) =>
      ss.map((spec, i) => {
        const own = slots[p]?.[i];
        const n = spec.shape.reduce((a, b) => a * b, 1);
        // Rank 0 sends its values; the others receive into buffers of rank 0's shapes.
        return strategy.rank === 0 && own ? Float32Array.from(own.tensor.dataSync() as Float32Array | Int32Array) : new Float32Array(n);
      }),
    );
    await strategy.broadcast([...buffers, ...slotBuffers.flat()], 0);
    if (strategy.rank === 0) return;
    assignValues(vars, buffers);
    for (const [p, phase] of phases.entries()) {
      const ss = specs[p] ?? [];
      const named: NamedTensor[] = ss.map((spec, i) => {
        const data = slotBuffers[p]?.[i] as Float32Array;
        return { name: spec.name, tensor: spec.dtype === 'int32' ? tf.tensor(Int32Array.from(data), spec.shape, 'int32') : tf.tensor(data, spec.shape, 'float32') };
      });
      if (named.length > 0) await phase.optimizer.setWeights(named);
      tf.dispose(named.map((n) => n.tensor));
    }
  } finally {
    // getWeights() makes a fresh tensor for the iteration count on every call; the slots are variables it keeps.
    for (const ws of slots) for (const w of ws) if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
  }
}

/** The sorted union of every rank's `names`. */
async function unionOfNames(strategy: Strategy, names: string[]): Promise<string[]> {
  const mine = Float32Array.from(Buffer.from(JSON.stringify(names), 'utf8'));
  const all = await strategy.allGather(mine);
  const union = new Set<string>();
  for (const bytes of all) for (const n of JSON.parse(Buffer.from(Uint8Array.from(bytes)).toString('utf8')) as string[]) union.add(n);
  return [...union].sort();
}

/** Combine one tick's statistics over the replicas (sums and counts added; min/max stay local). */
export async function reduceTick(strategy: Strategy, stats: Stats): Promise<TickRecord> {
  // A name reported on some ranks only (e.g. by report() in a data reader) still gets a slot on all.
  if (strategy.worldSize > 1) stats.declare(...(await unionOfNames(strategy, stats.names())));
  const local = stats.drain();
  const reduced: StatsBuffers = { ...local, sums: local.sums.slice(), counts: local.counts.slice() };
  await reduceSumsAndCounts(strategy, reduced.sums, reduced.counts);
  return summarize(reduced);
}

/**
 * Average the state each replica updates from its own shard (batch-norm moving statistics) over the
 * replicas, in place, as TF's MirroredStrategy does for such variables (synchronization ON_READ,
 * aggregation MEAN) when they are read for saving. Only the objective's replica-local variables:
 * averaging state that is already identical would still move it by rounding ((a + a + a) / 3 != a).
 */
export async function syncLocalState(strategy: Strategy, objective: Objective): Promise<void> {
  if (strategy.worldSize === 1) return;
  const local = objective.replicaLocalVariables?.() ?? [];
  if (local.length === 0) return;
  const buffers = await readValues(local);
  await strategy.allReduceMean(buffers);
  assignValues(local, buffers);
}

/**
 * Throw on every rank unless all replicas hold bitwise identical model state (after averaging the
 * replica-local state): the checksum of strategy.ts over the objective's state variables.
 */
export async function checkReplicasInSync(strategy: Strategy, objective: Objective): Promise<void> {
  if (strategy.worldSize === 1) return;
  await syncLocalState(strategy, objective);
  await checkInSync(strategy, await readValues(objective.stateVariables().map(([, v]) => v)));
}
