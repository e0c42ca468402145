/**
 * The input pipeline: shuffle, shard, batch and prefetch the typed examples of an
 * {@link ExampleDataset} (an image, a calorimeter shower with its energy and angle, ...) into one
 * array per declared field. Tensor-free: the trainer turns a {@link HostBatch}'s fields into the
 * named tensors of a batch, after the dataset's {@link ExampleSpec}.
 *
 * Order: every epoch has one global permutation of the dataset, drawn from (seed, epoch) and so the
 * same on every rank. A global batch is `worldSize * batchSize` consecutive items of that order; rank
 * r takes the r-th slice of `batchSize` items. Augmentations are injected ({@link Augmentation}, e.g.
 * the image flip of data/examples.ts); each one's random choice for an item is a pure function of
 * (seed, augmentation name, epoch, position in the order), so batches depend neither on prefetch depth
 * nor on where a run was resumed.
 */

import { hashSeed, Rng } from '../util/random.js';

/** A finite, indexable set of square images; shared by image folders and synthetic tiles. */
export interface ImageDataset {
  /** Number of images. */
  readonly size: number;
  /** Side of every (square) image, in pixels. */
  readonly resolution: number;
  /** Channels per pixel: 1 (grayscale / SAR intensity) or 3 (RGB). */
  readonly channels: 1 | 3;
  /**
   * Image i as HWC float32 in [-1, 1]. `epoch` (given by the pipeline) lets a dataset draw a
   * different item per epoch, e.g. a fresh random window of a scene; others ignore it.
   */
  get(i: number, epoch?: number): Promise<Float32Array>;
  /** Name of image i for error messages and logs. */
  name(i: number): string;
}

/** Element type of one field of an example. */
export type FieldDtype = 'float32' | 'int32';

/** Shape (without the batch axis; `[]` for a scalar) and dtype of one field of an example. */
export interface FieldSpec {
  /** Shape of one example's value, e.g. `[H, W, C]` for an image, `[]` for an energy. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: FieldDtype;
}

/** The declared fields of every example of a dataset, by name (e.g. `{ images: [H, W, C] }`). */
export type ExampleSpec = Readonly<Record<string, FieldSpec>>;

/** One example: a flat array per field of the dataset's {@link ExampleSpec}, row-major. */
export type Example = Readonly<Record<string, Float32Array | Int32Array>>;

/** A finite, indexable set of typed examples with a declared shape. */
export interface ExampleDataset {
  /** Number of examples. */
  readonly size: number;
  /** Name, shape and dtype of every field of an example. */
  readonly spec: ExampleSpec;
  /**
   * Example i (its arrays may be shared with a cache: augmentations copy, never write in place).
   * `epoch` is the pipeline's epoch, for datasets that draw a different item per epoch.
   */
  get(i: number, epoch?: number): Promise<Example>;
  /** Name of example i for error messages and logs. */
  name(i: number): string;
}

/**
 * A random transformation of one example, injected into the pipeline (e.g. a horizontal image flip).
 * `seed` is a 32-bit hash of (pipeline seed, `name`, epoch, position), the same on every rank and
 * after a resume. Return `null` to leave the example as it is.
 */
export interface Augmentation {
  /** Stable name; part of the seed of its random choices and the key of {@link HostBatch.augmented}. */
  readonly name: string;
  /** The transformed example (new arrays), or null when this item is left alone. */
  apply(example: Example, spec: ExampleSpec, seed: number): Example | null;
}

/** One field of a {@link HostBatch}: the batch's values of one declared field. */
export interface HostField {
  /** Values of every example, concatenated (row-major, batch axis first). */
  data: Float32Array | Int32Array;
  /** `[N, ...spec.shape]`. */
  shape: number[];
  /** Element type. */
  dtype: FieldDtype;
}

/** One batch of examples for this rank, as host arrays (the trainer makes the tensors). */
export interface HostBatch {
  /** One entry per field of the dataset's spec. */
  fields: Record<string, HostField>;
  /** Epoch the batch belongs to (0-based). */
  epoch: number;
  /** Dataset index of each example in the batch. */
  indices: number[];
  /** Per augmentation name, whether it changed each example (e.g. `augmented.flip[k]`). */
  augmented: Record<string, boolean[]>;
}

/** Position of a pipeline: plain JSON, stored in checkpoints. */
export interface PipelineState {
  /** Epoch of the next batch to be returned (0-based). */
  epoch: number;
  /** Position, in items of the epoch's global order, where the next global batch starts. */
  cursor: number;
  /** Seed of the pipeline that wrote the state (checked on restore). */
  seed: number;
  /** Dataset size when the state was written (checked on restore). */
  datasetSize: number;
}

/** Options of {@link Pipeline}. */
export interface PipelineOptions {
  /** Images per batch on this rank (the per-replica batch size). Required. */
  batchSize: number;
  /** Seed of the shuffle order and the flips; default 0. */
  seed?: number;
  /** This replica's rank, 0-based; default 0. */
  rank?: number;
  /** Number of replicas sharing each global batch; default 1. */
  worldSize?: number;
  /** Augmentations applied to each example in order (seeded, deterministic); default none. */
  augment?: readonly Augmentation[];
  /** Number of batches decoded ahead of the one being consumed; default 2 (0 disables). */
  prefetch?: number;
  /**
   * Drop the incomplete last global batch of each epoch; default true. When false, the last global
   * batch is split evenly over the ranks (each rank gets `ceil(rest / worldSize)` items), padded by
   * wrapping to the start of the epoch's order so every rank returns the same batch size.
   */
  dropLast?: boolean;
  /** Position to start from (from {@link Pipeline.getState}); default the start of epoch 0. */
  state?: PipelineState;
}

/** What is needed to assemble one batch, decided synchronously in order. */
interface BatchPlan {
  epoch: number;
  indices: number[];
  /** Position of each item in the epoch's order (the seed of its augmentations). */
  positions: number[];
  /** Position after this batch. */
  after: { epoch: number; cursor: number };
}

interface Pending {
  plan: BatchPlan;
  promise: Promise<HostBatch>;
}

/**
 * Shuffled, sharded, batched and prefetched iteration over an {@link ExampleDataset}, with an exact,
 * serialisable position.
 */
export class Pipeline {
  /** Images per batch on this rank. */
  readonly batchSize: number;
  /** Shuffle and flip seed. */
  readonly seed: number;
  /** This replica's rank. */
  readonly rank: number;
  /** Number of replicas. */
  readonly worldSize: number;
  /** Items per global batch (`worldSize * batchSize`). */
  readonly globalBatchSize: number;
  /** Whether the incomplete last global batch of an epoch is dropped. */
  readonly dropLast: boolean;
  /** Augmentations applied to each example. */
  readonly augment: readonly Augmentation[];
  /** Prefetch depth in batches. */
  readonly prefetch: number;

  private readonly dataset: ExampleDataset;
  /** Position after the last batch returned by next(). */
  private returned: { epoch: number; cursor: number };
  /** Position after the last batch planned (returned or prefetched). */
  private planned: { epoch: number; cursor: number };
  private queue: Pending[] = [];
  /** Bumped whenever queued batches are discarded, so a stale in-flight next() cannot move the position. */
  private generation = 0;
  private closed = false;
  private orderEpoch = -1;
  private order: number[] = [];

  constructor(dataset: ExampleDataset, opts: PipelineOptions) {
    const batchSize = opts.batchSize;
    const worldSize = opts.worldSize ?? 1;
    const rank = opts.rank ?? 0;
    const prefetch = opts.prefetch ?? 2;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`Pipeline: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`Pipeline: worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`Pipeline: rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`Pipeline: prefetch must be a non-negative integer, got ${prefetch}`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.worldSize = worldSize;
    this.rank = rank;
    this.prefetch = prefetch;
    this.seed = opts.seed ?? 0;
    this.augment = opts.augment ?? [];
    if (Object.keys(dataset.spec).length === 0) throw new RangeError('Pipeline: the dataset declares no fields (its spec is empty)');
    this.dropLast = opts.dropLast ?? true;
    this.globalBatchSize = batchSize * worldSize;
    if (dataset.size < this.globalBatchSize) {
      throw new RangeError(
        `Pipeline: the dataset has ${dataset.size} examples, fewer than one global batch of ${this.globalBatchSize} ` +
          `(batch size ${batchSize} x ${worldSize} replicas); use more data or a smaller batch size`,
      );
    }
    this.returned = { epoch: 0, cursor: 0 };
    this.planned = { epoch: 0, cursor: 0 };
    if (opts.state) this.setState(opts.state);
  }

  /** Number of batches each rank returns per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.size;
    return this.dropLast ? Math.floor(n / this.globalBatchSize) : Math.ceil(n / this.globalBatchSize);
  }

  /** Position after the last batch returned by {@link next} (prefetched batches do not count). */
  getState(): PipelineState {
    return { epoch: this.returned.epoch, cursor: this.returned.cursor, seed: this.seed, datasetSize: this.dataset.size };
  }

  /**
   * Continue from a position written by {@link getState}: the next batch is the one an
   * uninterrupted pipeline would have returned. Discards prefetched batches.
   */
  setState(state: PipelineState): void {
    const n = this.dataset.size;
    if (!Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor > n) {
      throw new RangeError(`Pipeline.setState: invalid position epoch=${state.epoch} cursor=${state.cursor} (dataset has ${n} examples)`);
    }
    if (state.datasetSize !== n) {
      throw new Error(`Pipeline.setState: the state was written for a dataset of ${state.datasetSize} examples, this one has ${n}; the shuffle order would differ`);
    }
    if (state.seed !== this.seed) {
      throw new Error(`Pipeline.setState: the state was written with seed ${state.seed}, this pipeline uses seed ${this.seed}`);
    }
    this.dropQueue();
    this.returned = { epoch: state.epoch, cursor: state.cursor };
    this.planned = { ...this.returned };
  }

  /** The global order of one epoch: a permutation of the dataset indices, the same on every rank. */
  epochOrder(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      const order = Array.from({ length: this.dataset.size }, (_, i) => i);
      new Rng(hashSeed('pipeline-order', this.seed, epoch)).shuffle(order);
      this.order = order;
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** The next batch of this rank's shard. Resolves after its examples are loaded. */
  async next(): Promise<HostBatch> {
    if (this.closed) throw new Error('Pipeline.next: the pipeline is closed');
    if (this.queue.length === 0) this.enqueue();
    const head = this.queue.shift() as Pending;
    const generation = this.generation;
    this.fill();
    let batch: HostBatch;
    try {
      batch = await head.promise;
    } catch (err) {
      if (generation === this.generation) {
        // Forget everything planned after the failed batch so a retry starts from the same place.
        this.dropQueue();
        this.planned = { ...this.returned };
      }
      throw err;
    }
    if (this.closed) throw new Error('Pipeline.next: the pipeline was closed while the batch was loading');
    if (generation !== this.generation) throw new Error('Pipeline.next: the position was reset (setState) while the batch was loading');
    // Calls that were not awaited one by one may resolve out of order: keep the furthest position.
    const a = head.plan.after;
    if (a.epoch > this.returned.epoch || (a.epoch === this.returned.epoch && a.cursor > this.returned.cursor)) this.returned = a;
    return batch;
  }

  /** Stop prefetching and release queued batches; later calls to {@link next} throw. */
  close(): void {
    this.closed = true;
    this.dropQueue();
  }

  private dropQueue(): void {
    this.queue = [];
    this.generation += 1;
  }

  /** Plan batches until `prefetch` are queued. */
  private fill(): void {
    while (!this.closed && this.queue.length < this.prefetch) this.enqueue();
  }

  private enqueue(): void {
    const plan = this.plan();
    const promise = this.assemble(plan);
    // A prefetched batch may fail before anyone awaits it; next() reports the error when it gets there.
    promise.catch(() => undefined);
    this.queue.push({ plan, promise });
  }

  /** Decide the next batch (indices, positions) and advance the planned position. */
  private plan(): BatchPlan {
    const n = this.dataset.size;
    const g = this.globalBatchSize;
    let { epoch, cursor } = this.planned;
    // Start a new epoch when the rest of this one cannot make a batch.
    if (cursor >= n || (this.dropLast && cursor + g > n)) {
      epoch += 1;
      cursor = 0;
    }
    const order = this.epochOrder(epoch);
    const rest = Math.min(g, n - cursor);
    const perRank = rest === g ? this.batchSize : Math.ceil(rest / this.worldSize);
    const indices: number[] = [];
    const positions: number[] = [];
    for (let k = 0; k < perRank; k++) {
      // Positions past the end of the epoch wrap to its start (only with dropLast = false).
      const pos = (cursor + this.rank * perRank + k) % n;
      indices.push(order[pos] as number);
      positions.push(pos);
    }
    const after = { epoch, cursor: cursor + rest };
    this.planned = after;
    return { epoch, indices, positions, after };
  }

  /** Load the planned examples, augment them and pack each field into one array. */
  private async assemble(plan: BatchPlan): Promise<HostBatch> {
    const spec = this.dataset.spec;
    const n = plan.indices.length;
    const names = Object.keys(spec);
    const sizes = names.map((f) => (spec[f] as FieldSpec).shape.reduce((a, b) => a * b, 1));
    const fields: Record<string, HostField> = {};
    names.forEach((f, j) => {
      const fs = spec[f] as FieldSpec;
      const len = n * (sizes[j] as number);
      fields[f] = { data: fs.dtype === 'int32' ? new Int32Array(len) : new Float32Array(len), shape: [n, ...fs.shape], dtype: fs.dtype };
    });
    const augmented: Record<string, boolean[]> = Object.fromEntries(this.augment.map((a) => [a.name, [] as boolean[]]));
    const examples = await Promise.all(plan.indices.map((i) => this.dataset.get(i, plan.epoch)));
    examples.forEach((loaded, k) => {
      let ex = loaded;
      for (const aug of this.augment) {
        const out = aug.apply(ex, spec, hashSeed(`pipeline-${aug.name}`, this.seed, plan.epoch, plan.positions[k] as number));
        (augmented[aug.name] as boolean[]).push(out !== null);
        if (out !== null) ex = out;
      }
      names.forEach((f, j) => {
        const v = ex[f];
        const per = sizes[j] as number;
        const idx = plan.indices[k] as number;
        const fs = spec[f] as FieldSpec;
        if (v === undefined) throw new Error(`Pipeline: ${this.dataset.name(idx)} has no field "${f}" (the dataset declares ${names.join(', ')})`);
        if (v.length !== per) {
          throw new Error(`Pipeline: ${this.dataset.name(idx)} has ${v.length} values in "${f}", expected ${fs.shape.length > 0 ? fs.shape.join('x') : 'a scalar'} = ${per}`);
        }
        (fields[f] as HostField).data.set(v, k * per);
      });
    });
    return { fields, epoch: plan.epoch, indices: plan.indices, augmented };
  }
}
