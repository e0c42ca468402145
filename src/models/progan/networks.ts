/**
 * Conditional progressive GAN for corner completion (REFERENCE.md section 2): a generator that maps
 * noise plus the latents of three known corners to the missing corner, a global discriminator that
 * judges the assembled 2R x 2R image, and a local discriminator that judges the R x R corner alone.
 *
 * Growth keeps trained weights: every block up to the largest resolution is built once, in a fixed
 * order, when a network is constructed; a forward call selects the active path from the current
 * resolution and blends the newest block in with an `alpha` input (never a clock). Variables are
 * therefore stable for the whole run: the same names and order on every replica and in every
 * checkpoint, whatever the current resolution.
 *
 * Reads bottom-up: channel table, shared plumbing, generator, discriminator.
 */
import * as tf from '@tensorflow/tfjs';
import {
  applyLayer,
  downscale2d,
  EqualizedConv2D,
  EqualizedDense,
  fadeIn,
  lrelu,
  minibatchStdDev,
  pixelNorm,
  upscale2d,
} from '../../layers/index.js';
import { hashSeed } from '../../util/random.js';

// ---------------------------------------------------------------------------------------------
// Channel table

/** Channels of a stage: nf(stage) = min(floor(fmapBase / 2^stage), fmapMax). */
export function proganFeatures(stage: number, fmapBase: number, fmapMax: number): number {
  return Math.max(1, Math.min(Math.floor(fmapBase / 2 ** stage), fmapMax));
}

/**
 * Channels of the feature maps at a resolution (stage = log2(res) - 1, so 4x4 is stage 1):
 * with the reference fmapBase 8192 and fmapMax 512, 4..64 -> 512, 128 -> 256, 256 -> 128.
 */
export function proganChannelsAt(resolution: number, fmapBase: number, fmapMax: number): number {
  return proganFeatures(Math.log2(resolution) - 1, fmapBase, fmapMax);
}

/** The resolutions 4, 8, ..., maxResolution. */
export function proganResolutions(maxResolution: number): number[] {
  checkResolution(maxResolution, 'maxResolution');
  const out: number[] = [];
  for (let r = 4; r <= maxResolution; r *= 2) out.push(r);
  return out;
}

/** Throw unless `t` has exactly `expected` shape (used at block boundaries). */
function assertShape(t: tf.Tensor, expected: number[], where: string): void {
  if (!tf.util.arraysEqual(t.shape, expected)) {
    throw new Error(`${where}: expected shape [${expected.join(', ')}], got [${t.shape.join(', ')}]`);
  }
}

function checkResolution(resolution: number, what: string): void {
  if (!Number.isInteger(resolution) || resolution < 4 || (resolution & (resolution - 1)) !== 0) {
    throw new Error(`${what} must be a power of two >= 4, got ${resolution}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing: layer bookkeeping, named variables

/**
 * Base of the ProGAN networks: named layers built once, with the construction order as the variable
 * order; named variables for checkpoints and per-resolution trainable lists for the optimisers.
 */
export abstract class ProGanNetwork {
  /** Layers by name, in construction order. */
  protected readonly layers = new Map<string, tf.layers.Layer>();
  private disposed = false;

  protected constructor(private readonly baseSeed: number | undefined) {}

  /** Per-layer initialiser seed derived from the network seed and the layer name. */
  protected seedFor(name: string): number | undefined {
    return this.baseSeed === undefined ? undefined : hashSeed(this.baseSeed, name);
  }

  /**
   * Register a layer and create its weights now, by applying it to a symbolic input of
   * `inputShape` (without the batch dimension). Building through `apply` puts the weights under
   * the layer's name scope, so their `originalName` is e.g. `g_b16_conv0/kernel`.
   */
  protected add<L extends tf.layers.Layer>(layer: L, inputShape: number[]): L {
    if (this.layers.has(layer.name)) throw new Error(`duplicate layer name ${layer.name}`);
    layer.apply(tf.input({ shape: inputShape }));
    this.layers.set(layer.name, layer);
    return layer;
  }

  /** The layer called `name` (e.g. `g_b16_torgb`). */
  getLayer(name: string): tf.layers.Layer {
    const layer = this.layers.get(name);
    if (layer === undefined) throw new Error(`no layer named ${name}`);
    return layer;
  }

  /** Names of every layer, in construction order. */
  layerNames(): string[] {
    return [...this.layers.keys()];
  }

  /** Names of the layers a forward pass at `resolution` uses. */
  protected abstract activeLayerNames(resolution: number): string[];

  /**
   * Every variable as `[name, variable]` in a fixed order (construction order), named
   * `<layer>/<weight>`, e.g. `dg_b32_fromrgb/kernel`. Names do not depend on how many networks this
   * process built. This list is the checkpoint format: save the values by name, assign them back.
   */
  variables(): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const layer of this.layers.values()) {
      for (const w of layer.weights) {
        const v = w.read();
        if (!(v instanceof tf.Variable)) throw new Error(`weight ${w.originalName} is not a tf.Variable`);
        out.push([w.originalName, v]);
      }
    }
    return out;
  }

  /**
   * Trainable variables in the fixed order of {@link variables}. With a resolution, only those of
   * the layers a forward pass at that resolution uses (including the previous resolution's
   * ToRGB/FromRGB used by the fade-in, which get zero gradients at alpha = 1). Pass the list for
   * the current resolution to `tf.variableGrads`: it silently omits variables a pass does not use,
   * so the full list would give fewer gradients than variables.
   */
  trainableVariables(resolution?: number): tf.Variable[] {
    const active = resolution === undefined ? null : new Set(this.activeLayerNames(resolution));
    const out: tf.Variable[] = [];
    for (const [name, layer] of this.layers) {
      if (active !== null && !active.has(name)) continue;
      for (const w of layer.trainableWeights) {
        const v = w.read();
        if (v instanceof tf.Variable) out.push(v);
      }
    }
    return out;
  }

  /** Assign values by name (e.g. from a checkpoint or another network); every name must exist. */
  assignVariables(values: Iterable<[string, tf.Tensor]>): void {
    const byName = new Map(this.variables());
    for (const [name, value] of values) {
      const v = byName.get(name);
      if (v === undefined) throw new Error(`unknown variable ${name}`);
      if (!tf.util.arraysEqual(v.shape, value.shape)) {
        throw new Error(`variable ${name}: shape [${v.shape.join(', ')}] vs value [${value.shape.join(', ')}]`);
      }
      v.assign(value);
    }
  }

  /** Release every variable. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const layer of this.layers.values()) for (const w of layer.weights) w.dispose();
  }

  /** Apply a registered layer to one tensor. */
  protected run(name: string, x: tf.Tensor): tf.Tensor {
    return applyLayer(this.getLayer(name), x);
  }
}

function alphaTensor(alpha: number | tf.Tensor | undefined): tf.Tensor {
  if (alpha === undefined) return tf.scalar(1);
  return typeof alpha === 'number' ? tf.scalar(alpha) : alpha;
}

// ---------------------------------------------------------------------------------------------
// Generator

/** Configuration of {@link ProGanGenerator}. */
export interface ProGanGeneratorArgs {
  /** Side of the largest generated corner (the target R'); power of two >= 4. Required. */
  maxResolution: number;
  /** Image channels (1 for SAR, 3 for RGB). Default 3. */
  channels?: number;
  /** Size of the noise vector. Default 2048 (reference). */
  zDim?: number;
  /** Size of one corner latent from the encoder. Default 2048 (reference). */
  latentDim?: number;
  /** Number of known corners whose latents condition the generator. Default 3. */
  numConditions?: number;
  /** Channel-table base: nf(stage) = min(fmapBase / 2^stage, fmapMax). Default 8192. */
  fmapBase?: number;
  /** Channel-table cap. Default 512. */
  fmapMax?: number;
  /** Output activation: 'linear' (ProGAN, reference) or 'tanh'. Default 'linear'. */
  outputActivation?: 'linear' | 'tanh';
  /** Seed of the N(0, 1) weight initialisers (per layer: hash of seed and layer name); unset = random. Default unset. */
  seed?: number;
  /** Prefix of the block names. Default 'g'. */
  prefix?: string;
  /**
   * Channels of the spatial context (0: latent conditioning only, the paper's). With k > 0 every
   * block's first conv (and the 4x4 conv) also reads a [r, r, k] context map aligned with the corner:
   * the known neighbours' pixels mirrored onto it (see {@link mirroredContext}), at that block's
   * resolution. Default 0.
   */
  contextChannels?: number;
}

/** The generator's inputs: noise, the latents of the known corners and (spatial conditioning) the context. */
export interface ProGanGeneratorInputs {
  /** Noise [N, zDim]. */
  noise: tf.Tensor2D;
  /** One latent [N, latentDim] per known corner, in a fixed corner order. */
  conditions: tf.Tensor2D[];
  /** Spatial context [N, R', R', contextChannels] at the forward resolution (required when contextChannels > 0). */
  context?: tf.Tensor4D;
}

/**
 * The spatial context of the bottom-right corner: its three known neighbours mirrored onto it, so that
 * pixel (i, j) of the context holds the known pixels at the same distance across each boundary:
 * [top-right flipped vertically, bottom-left flipped horizontally, top-left flipped both ways]
 * ([N, R, R, 3C] from corners [N, R, R, C]). Row 0 of the first block is the row just above the
 * missing corner; column 0 of the second is the column just left of it.
 */
export function mirroredContext(tl: tf.Tensor4D, tr: tf.Tensor4D, bl: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.concat([tf.reverse(tr, 1), tf.reverse(bl, 2), tf.reverse(tl, [1, 2])], 3) as tf.Tensor4D);
}

/** Which path a forward pass takes. */
export interface ProGanForwardOptions {
  /** Current resolution (power of two, 4 ... maxResolution). */
  resolution: number;
  /** Fade-in weight of the newest block, a number or a scalar / per-sample tensor in [0, 1]. Default 1. */
  alpha?: number | tf.Tensor;
}

/**
 * Generator: concat(noise, corner latents) -> 4x4 features -> pixel norm -> one block per
 * resolution (nearest 2x upsample, 2 x [3x3 conv, lrelu, pixel norm]) -> ToRGB (1x1, gain 1).
 *
 * Blocks: `g_b4_dense` (only when needed, below), `g_b4_conv`, `g_b4_torgb`, then per resolution r:
 * `g_b{r}_conv0`, `g_b{r}_conv1`, `g_b{r}_torgb`.
 *
 * Input to 4x4: when the input size equals 16 * nf(4x4) (the reference: 2048 + 3 * 2048 = 8192 =
 * 16 * 512) it is reshaped to [4, 4, nf] with no dense layer, as the reference does; otherwise an
 * equalized dense layer (gain sqrt(2)/4, as ProGAN's first layer) maps it to 16 * nf, followed by
 * lrelu. Pixel norm follows either way; then a 3x3 conv at 4x4 (ProGAN's 4x4 block).
 *
 * Fade-in at resolution r > 4: out = lerp(upsample(ToRGB_{r/2}(x_{r/2})), ToRGB_r(x_r), alpha).
 */
export class ProGanGenerator extends ProGanNetwork {
  /** Resolved configuration. */
  readonly config: Required<Omit<ProGanGeneratorArgs, 'seed'>> & { seed: number | undefined };
  /** Context tensor of the current forward call (set inside apply/features only). */
  private ctx: tf.Tensor4D | null = null;
  /** Size of the concatenated input vector. */
  readonly inputSize: number;
  /** Whether the input goes through a dense layer (false: plain reshape to 4x4). */
  readonly usesDense: boolean;

  constructor(args: ProGanGeneratorArgs) {
    super(args.seed);
    checkResolution(args.maxResolution, 'maxResolution');
    this.config = {
      maxResolution: args.maxResolution,
      channels: args.channels ?? 3,
      zDim: args.zDim ?? 2048,
      latentDim: args.latentDim ?? 2048,
      numConditions: args.numConditions ?? 3,
      fmapBase: args.fmapBase ?? 8192,
      fmapMax: args.fmapMax ?? 512,
      outputActivation: args.outputActivation ?? 'linear',
      seed: args.seed,
      prefix: args.prefix ?? 'g',
      contextChannels: args.contextChannels ?? 0,
    };
    const c = this.config;
    if (!Number.isInteger(c.contextChannels) || c.contextChannels < 0) throw new Error(`contextChannels must be an integer >= 0, got ${c.contextChannels}`);
    const k = c.contextChannels;
    this.inputSize = c.zDim + c.numConditions * c.latentDim;
    const nf4 = this.channelsAt(4);
    this.usesDense = this.inputSize !== 16 * nf4;

    // Build every block once, lowest resolution first: this order is the variable order.
    if (this.usesDense) {
      this.add(this.dense(`${c.prefix}_b4_dense`, 16 * nf4, Math.SQRT2 / 4), [this.inputSize]);
    }
    this.add(this.conv(`${c.prefix}_b4_conv`, nf4, 3), [4, 4, nf4 + k]);
    this.add(this.conv(`${c.prefix}_b4_torgb`, c.channels, 1, 1), [4, 4, nf4]);
    for (const r of proganResolutions(c.maxResolution).slice(1)) {
      const cin = this.channelsAt(r / 2);
      const cout = this.channelsAt(r);
      this.add(this.conv(this.blockName(r, 'conv0'), cout, 3), [r, r, cin + k]);
      this.add(this.conv(this.blockName(r, 'conv1'), cout, 3), [r, r, cout]);
      this.add(this.conv(this.blockName(r, 'torgb'), c.channels, 1, 1), [r, r, cout]);
    }
  }

  /** Feature channels at a resolution (from fmapBase / fmapMax). */
  channelsAt(resolution: number): number {
    return proganChannelsAt(resolution, this.config.fmapBase, this.config.fmapMax);
  }

  /** Concatenate noise and corner latents into the generator's input vector [N, inputSize]. */
  concatInputs(inputs: ProGanGeneratorInputs): tf.Tensor2D {
    const c = this.config;
    if (inputs.conditions.length !== c.numConditions) {
      throw new Error(`expected ${c.numConditions} corner latents, got ${inputs.conditions.length}`);
    }
    if (inputs.noise.shape[1] !== c.zDim) throw new Error(`noise must be [N, ${c.zDim}], got [${inputs.noise.shape}]`);
    for (const z of inputs.conditions) {
      if (z.shape[1] !== c.latentDim) throw new Error(`corner latents must be [N, ${c.latentDim}], got [${z.shape}]`);
    }
    return tf.concat([inputs.noise, ...inputs.conditions], 1); // [N, inputSize]
  }

  /** Features [N, r, r, nf(r)] at `resolution` (the input of that resolution's ToRGB). */
  features(inputs: ProGanGeneratorInputs | tf.Tensor2D, resolution: number): tf.Tensor4D {
    this.checkForwardResolution(resolution);
    return this.withContext(inputs, () => this.featuresOf(inputs, resolution));
  }

  /** Run `f` with the context of `inputs` checked and set for the blocks. */
  private withContext<T>(inputs: ProGanGeneratorInputs | tf.Tensor2D, f: () => T): T {
    const k = this.config.contextChannels;
    if (k === 0) return f();
    const ctx = inputs instanceof tf.Tensor ? undefined : inputs.context;
    if (ctx === undefined) throw new Error(`this generator is spatially conditioned: pass inputs.context [N, R', R', ${k}]`);
    if (ctx.rank !== 4 || ctx.shape[3] !== k || ctx.shape[1] !== ctx.shape[2]) throw new Error(`context must be [N, R', R', ${k}], got [${ctx.shape.join(', ')}]`);
    const outer = this.ctx;
    this.ctx = ctx;
    try {
      return f();
    } finally {
      this.ctx = outer;
    }
  }

  /** `x` [N, r, r, f] with the context at resolution r appended (unchanged without context). */
  private withContextAt(x: tf.Tensor4D): tf.Tensor4D {
    const ctx = this.ctx;
    if (ctx === null) return x;
    const r = x.shape[1];
    const side = ctx.shape[1];
    if (side < r || side % r !== 0) throw new Error(`context side ${side} cannot be brought to resolution ${r}`);
    const at = side === r ? ctx : downscale2d(ctx, side / r); // [N, r, r, k]
    return tf.concat([x, at], 3) as tf.Tensor4D;
  }

  private featuresOf(inputs: ProGanGeneratorInputs | tf.Tensor2D, resolution: number): tf.Tensor4D {
    return tf.tidy(() => {
      let x = this.toFourByFour(inputs); // [N, 4, 4, nf(4)]
      for (let r = 8; r <= resolution; r *= 2) x = this.block(x, r); // [N, r, r, nf(r)]
      return x;
    });
  }

  /** Generate corners [N, resolution, resolution, channels]; see the class comment for the fade-in. */
  apply(inputs: ProGanGeneratorInputs | tf.Tensor2D, options: ProGanForwardOptions): tf.Tensor4D {
    const { resolution } = options;
    this.checkForwardResolution(resolution);
    if (this.config.contextChannels > 0 && !(inputs instanceof tf.Tensor) && inputs.context && inputs.context.shape[1] !== resolution) {
      throw new Error(`context must be at the forward resolution ${resolution}, got side ${inputs.context.shape[1]}`);
    }
    return this.withContext(inputs, () => tf.tidy(() => {
      let out: tf.Tensor4D;
      if (resolution === 4) {
        out = this.toRgb(this.featuresOf(inputs, 4), 4);
      } else {
        const previous = this.featuresOf(inputs, resolution / 2); // [N, r/2, r/2, nf(r/2)]
        const current = this.block(previous, resolution); // [N, r, r, nf(r)]
        const oldRgb = upscale2d(this.toRgb(previous, resolution / 2)); // [N, r, r, C]
        out = fadeIn(oldRgb, this.toRgb(current, resolution), alphaTensor(options.alpha));
      }
      return this.config.outputActivation === 'tanh' ? tf.tanh(out) : out;
    }));
  }

  protected activeLayerNames(resolution: number): string[] {
    this.checkForwardResolution(resolution);
    const p = this.config.prefix;
    const names = [`${p}_b4_conv`];
    if (this.usesDense) names.push(`${p}_b4_dense`);
    for (let r = 8; r <= resolution; r *= 2) names.push(this.blockName(r, 'conv0'), this.blockName(r, 'conv1'));
    names.push(this.blockName(resolution, 'torgb'));
    if (resolution > 4) names.push(this.blockName(resolution / 2, 'torgb'));
    return names;
  }

  private checkForwardResolution(resolution: number): void {
    checkResolution(resolution, 'resolution');
    if (resolution > this.config.maxResolution) {
      throw new Error(`resolution ${resolution} exceeds the generator's maxResolution ${this.config.maxResolution}`);
    }
  }

  private blockName(resolution: number, part: string): string {
    return `${this.config.prefix}_b${resolution}_${part}`;
  }

  private conv(name: string, filters: number, kernelSize: number, gain?: number): EqualizedConv2D {
    const seed = this.seedFor(name);
    return new EqualizedConv2D({
      name,
      filters,
      kernelSize,
      ...(gain === undefined ? {} : { gain }),
      ...(seed === undefined ? {} : { seed }),
    });
  }

  private dense(name: string, units: number, gain: number): EqualizedDense {
    const seed = this.seedFor(name);
    return new EqualizedDense({ name, units, gain, ...(seed === undefined ? {} : { seed }) });
  }

  private toFourByFour(inputs: ProGanGeneratorInputs | tf.Tensor2D): tf.Tensor4D {
    const z = inputs instanceof tf.Tensor ? inputs : this.concatInputs(inputs);
    if (z.rank !== 2 || z.shape[1] !== this.inputSize) {
      throw new Error(`generator input must be [N, ${this.inputSize}], got [${z.shape.join(', ')}]`);
    }
    const n = z.shape[0];
    const nf4 = this.channelsAt(4);
    const p = this.config.prefix;
    // Map the input vector onto a 4x4 grid (reshape, or dense + lrelu), then pixel norm.
    const grid = this.usesDense
      ? lrelu(tf.reshape(this.run(`${p}_b4_dense`, z), [n, 4, 4, nf4]))
      : tf.reshape(z, [n, 4, 4, nf4]); // [N, 4, 4, nf(4)]
    const x = this.withContextAt(pixelNorm(grid) as tf.Tensor4D); // [N, 4, 4, nf(4) (+ k)]
    const out = pixelNorm(lrelu(this.run(`${p}_b4_conv`, x))) as tf.Tensor4D; // [N, 4, 4, nf(4)]
    assertShape(out, [n, 4, 4, nf4], `${p}_b4`);
    return out;
  }

  private block(x: tf.Tensor4D, resolution: number): tf.Tensor4D {
    let h: tf.Tensor = this.withContextAt(upscale2d(x)); // [N, r, r, nf(r/2) (+ k)]
    h = pixelNorm(lrelu(this.run(this.blockName(resolution, 'conv0'), h))); // [N, r, r, nf(r)]
    h = pixelNorm(lrelu(this.run(this.blockName(resolution, 'conv1'), h))); // [N, r, r, nf(r)]
    assertShape(h, [x.shape[0], resolution, resolution, this.channelsAt(resolution)], this.blockName(resolution, 'conv1'));
    return h as tf.Tensor4D;
  }

  private toRgb(x: tf.Tensor4D, resolution: number): tf.Tensor4D {
    return this.run(this.blockName(resolution, 'torgb'), x) as tf.Tensor4D; // [N, r, r, C]
  }
}

// ---------------------------------------------------------------------------------------------
// Discriminators

/** Configuration of {@link ProGanDiscriminator}. */
export interface ProGanDiscriminatorArgs {
  /** Side of the largest image it judges: 2R' for the global D, R' for the local D; power of two >= 4. Required. */
  maxResolution: number;
  /** Image channels (1 for SAR, 3 for RGB). Default 3. */
  channels?: number;
  /** Channel-table base: nf(stage) = min(fmapBase / 2^stage, fmapMax). Default 8192. */
  fmapBase?: number;
  /** Channel-table cap. Default 512. */
  fmapMax?: number;
  /** Minibatch-stddev group size at 4x4 (0 disables the layer). Default 4. */
  mbstdGroupSize?: number;
  /** Output activation: 'linear' (reference) or 'lrelu' (CERN variant). Default 'linear'. */
  outputActivation?: 'linear' | 'lrelu';
  /** Seed of the N(0, 1) weight initialisers (per layer: hash of seed and layer name); unset = random. Default unset. */
  seed?: number;
  /** Prefix of the block names: 'dg' for the global D, 'dl' for the local D. Default 'dg'. */
  prefix?: string;
}

/** Options of a discriminator forward pass; the resolution is the input's side. */
export interface ProGanDiscriminatorOptions {
  /** Fade-in weight of the newest block, a number or a scalar / per-sample tensor in [0, 1]. Default 1. */
  alpha?: number | tf.Tensor;
}

/**
 * Discriminator (global or local, by prefix and maxResolution). At input resolution r:
 * FromRGB_r (1x1, lrelu) -> blocks r, r/2, ..., 8 (3x3 conv nf(r) + lrelu, 3x3 conv nf(r/2) + lrelu,
 * 2x box downscale) -> minibatch stddev -> 3x3 conv nf(4) + lrelu -> dense nf(0) + lrelu ->
 * dense 1, linear (gain 1).
 *
 * Blocks: per resolution r from 4 up: `{p}_b{r}_fromrgb`, and for r > 4 `{p}_b{r}_conv0`,
 * `{p}_b{r}_conv1`; at 4x4 `{p}_b4_conv`, `{p}_b4_dense0`, `{p}_b4_dense1`.
 *
 * Fade-in mirrors the generator: after block r, x = lerp(lrelu(FromRGB_{r/2}(downscale(image))),
 * block_r(lrelu(FromRGB_r(image))), alpha).
 */
export class ProGanDiscriminator extends ProGanNetwork {
  /** Resolved configuration. */
  readonly config: Required<Omit<ProGanDiscriminatorArgs, 'seed'>> & { seed: number | undefined };

  constructor(args: ProGanDiscriminatorArgs) {
    super(args.seed);
    checkResolution(args.maxResolution, 'maxResolution');
    this.config = {
      maxResolution: args.maxResolution,
      channels: args.channels ?? 3,
      fmapBase: args.fmapBase ?? 8192,
      fmapMax: args.fmapMax ?? 512,
      mbstdGroupSize: args.mbstdGroupSize ?? 4,
      outputActivation: args.outputActivation ?? 'linear',
      seed: args.seed,
      prefix: args.prefix ?? 'dg',
    };
    const c = this.config;
    const nf4 = this.channelsAt(4);
    const mbstdChannels = c.mbstdGroupSize > 0 ? 1 : 0;

    // Build every block once, lowest resolution first: this order is the variable order.
    this.add(this.conv(this.blockName(4, 'fromrgb'), nf4, 1), [4, 4, c.channels]);
    this.add(this.conv(this.blockName(4, 'conv'), nf4, 3), [4, 4, nf4 + mbstdChannels]);
    this.add(this.dense(this.blockName(4, 'dense0'), proganFeatures(0, c.fmapBase, c.fmapMax)), [16 * nf4]);
    this.add(this.dense(this.blockName(4, 'dense1'), 1, 1), [proganFeatures(0, c.fmapBase, c.fmapMax)]);
    for (const r of proganResolutions(c.maxResolution).slice(1)) {
      const nf = this.channelsAt(r);
      this.add(this.conv(this.blockName(r, 'fromrgb'), nf, 1), [r, r, c.channels]);
      this.add(this.conv(this.blockName(r, 'conv0'), nf, 3), [r, r, nf]);
      this.add(this.conv(this.blockName(r, 'conv1'), this.channelsAt(r / 2), 3), [r, r, nf]);
    }
  }

  /** Feature channels at a resolution (from fmapBase / fmapMax). */
  channelsAt(resolution: number): number {
    return proganChannelsAt(resolution, this.config.fmapBase, this.config.fmapMax);
  }

  /** Scores [N, 1] for images [N, r, r, C]; r (the current resolution) is read from the shape. */
  apply(images: tf.Tensor4D, options: ProGanDiscriminatorOptions = {}): tf.Tensor2D {
    const [n, h, w, ch] = images.shape;
    if (h !== w) throw new Error(`discriminator input must be square, got ${h}x${w}`);
    this.checkForwardResolution(h);
    if (ch !== this.config.channels) throw new Error(`expected ${this.config.channels} channels, got ${ch}`);
    return tf.tidy(() => {
      let x = this.fromRgb(images, h); // [N, r, r, nf(r)]
      if (h > 4) {
        x = this.block(x, h); // [N, r/2, r/2, nf(r/2)]
        const old = this.fromRgb(downscale2d(images), h / 2); // [N, r/2, r/2, nf(r/2)]
        x = fadeIn(old, x, alphaTensor(options.alpha));
        for (let r = h / 2; r > 4; r /= 2) x = this.block(x, r);
      }
      // 4x4 head: minibatch stddev, conv, dense, dense(1).
      if (this.config.mbstdGroupSize > 0) x = minibatchStdDev(x, this.config.mbstdGroupSize); // [N, 4, 4, nf+1]
      x = lrelu(this.run(this.blockName(4, 'conv'), x)) as tf.Tensor4D; // [N, 4, 4, nf(4)]
      const flat = tf.reshape(x, [n, -1]); // [N, 16 nf(4)]
      const hidden = lrelu(this.run(this.blockName(4, 'dense0'), flat)); // [N, nf(0)]
      const score = this.run(this.blockName(4, 'dense1'), hidden) as tf.Tensor2D; // [N, 1]
      return this.config.outputActivation === 'lrelu' ? lrelu(score) : score;
    });
  }

  protected activeLayerNames(resolution: number): string[] {
    this.checkForwardResolution(resolution);
    const names = ['conv', 'dense0', 'dense1'].map((part) => this.blockName(4, part));
    for (let r = 8; r <= resolution; r *= 2) names.push(this.blockName(r, 'conv0'), this.blockName(r, 'conv1'));
    names.push(this.blockName(resolution, 'fromrgb'));
    if (resolution > 4) names.push(this.blockName(resolution / 2, 'fromrgb'));
    return names;
  }

  private checkForwardResolution(resolution: number): void {
    checkResolution(resolution, 'resolution');
    if (resolution > this.config.maxResolution) {
      throw new Error(`resolution ${resolution} exceeds the discriminator's maxResolution ${this.config.maxResolution}`);
    }
  }

  private blockName(resolution: number, part: string): string {
    return `${this.config.prefix}_b${resolution}_${part}`;
  }

  private conv(name: string, filters: number, kernelSize: number): EqualizedConv2D {
    const seed = this.seedFor(name);
    return new EqualizedConv2D({ name, filters, kernelSize, ...(seed === undefined ? {} : { seed }) });
  }

  private dense(name: string, units: number, gain?: number): EqualizedDense {
    const seed = this.seedFor(name);
    return new EqualizedDense({
      name,
      units,
      ...(gain === undefined ? {} : { gain }),
      ...(seed === undefined ? {} : { seed }),
    });
  }

  private fromRgb(images: tf.Tensor4D, resolution: number): tf.Tensor4D {
    return lrelu(this.run(this.blockName(resolution, 'fromrgb'), images)) as tf.Tensor4D; // [N, r, r, nf(r)]
  }

  private block(x: tf.Tensor4D, resolution: number): tf.Tensor4D {
    let h = lrelu(this.run(this.blockName(resolution, 'conv0'), x)); // [N, r, r, nf(r)]
    h = lrelu(this.run(this.blockName(resolution, 'conv1'), h)); // [N, r, r, nf(r/2)]
    const out = downscale2d(h as tf.Tensor4D); // [N, r/2, r/2, nf(r/2)]
    const half = resolution / 2;
    assertShape(out, [x.shape[0], half, half, this.channelsAt(half)], this.blockName(resolution, 'conv1'));
    return out;
  }
}

/** The global discriminator (prefix 'dg') for full images of side 2 * cornerResolution. */
export function createGlobalDiscriminator(
  args: Omit<ProGanDiscriminatorArgs, 'maxResolution' | 'prefix'> & { maxCornerResolution: number },
): ProGanDiscriminator {
  const { maxCornerResolution, ...rest } = args;
  return new ProGanDiscriminator({ ...rest, maxResolution: 2 * maxCornerResolution, prefix: 'dg' });
}

/** The local discriminator (prefix 'dl') for generated corners of side cornerResolution. */
export function createLocalDiscriminator(
  args: Omit<ProGanDiscriminatorArgs, 'maxResolution' | 'prefix'> & { maxCornerResolution: number },
): ProGanDiscriminator {
  const { maxCornerResolution, ...rest } = args;
  return new ProGanDiscriminator({ ...rest, maxResolution: maxCornerResolution, prefix: 'dl' });
}

/**
 * Blend real images the way the networks fade (ProGAN's lod blending): during a fade-in at
 * resolution r, reals are lerp(upsample(downscale(x)), x, alpha), so D sees reals and fakes with the
 * same amount of detail.
 */
export function fadeRealImages(images: tf.Tensor4D, alpha: number | tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => fadeIn(upscale2d(downscale2d(images)), images, alphaTensor(alpha)));
}
