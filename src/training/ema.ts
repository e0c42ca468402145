/**
 * Exponential moving average of a network's weights (ProGAN's "G smoothing", decay 0.999): the
 * averaged generator is the one used for samples and for completion after training.
 *
 * The average owns one shadow variable per source variable. Shadows start equal to their sources,
 * so variables that are not trained yet (blocks of resolutions not reached) stay equal to theirs.
 */
import * as tf from '@tensorflow/tfjs';

/** Options of {@link ExponentialMovingAverage}. */
export interface EmaOptions {
  /** Weight of the old average per update (beta): avg <- v + (avg - v) * beta. Default 0.999. */
  decay?: number;
  /** Prefix of the shadow names returned by {@link ExponentialMovingAverage.variables}. Default 'ema'. */
  prefix?: string;
}

/**
 * The decay that halves a weight's influence every `halfLifeImages` real images when each update
 * follows `imagesPerStep` images: 0.5^(imagesPerStep / halfLifeImages) (the StyleGAN convention;
 * ProGAN's fixed 0.999 at batch 16 is a half-life of about 11 kimg).
 */
export function emaDecayFromHalfLife(halfLifeImages: number, imagesPerStep: number): number {
  if (!(halfLifeImages > 0)) throw new Error(`EMA half-life must be > 0 images, got ${halfLifeImages}`);
  if (!(imagesPerStep > 0)) throw new Error(`images per step must be > 0, got ${imagesPerStep}`);
  return 0.5 ** (imagesPerStep / halfLifeImages);
}

/** A moving average of named variables, with its own shadow variables. */
export class ExponentialMovingAverage {
  /** Default decay of {@link update}. */
  readonly decay: number;
  /** Prefix of the shadow names. */
  readonly prefix: string;
  private readonly sources: Array<[string, tf.Variable]>;
  private readonly shadows: tf.Variable[];
  private swapped = false;
  private disposed = false;

  /** Track `sources` (named variables, e.g. a generator's `variables()`); shadows start as copies. */
  constructor(sources: Array<[string, tf.Variable]>, opts: EmaOptions = {}) {
    this.decay = opts.decay ?? 0.999;
    this.prefix = opts.prefix ?? 'ema';
    checkDecay(this.decay);
    this.sources = sources.slice();
    // Unnamed: tfjs variable names must be unique per process; the stable names are in variables().
    this.shadows = this.sources.map(([, v]) => tf.variable(v, false));
  }

  /** Shadows as `[prefix/name, variable]`, in the order of the sources (the checkpoint names). */
  variables(): Array<[string, tf.Variable]> {
    return this.sources.map(([name], i) => [`${this.prefix}/${name}`, this.shadows[i] as tf.Variable]);
  }

  /** avg <- v + (avg - v) * decay for every tracked variable. */
  update(decay: number = this.decay): void {
    this.check('update');
    checkDecay(decay);
    if (this.swapped) throw new Error('EMA.update: the averaged weights are swapped in; swap them out first');
    tf.tidy(() => {
      this.sources.forEach(([, v], i) => {
        const s = this.shadows[i] as tf.Variable;
        s.assign(tf.add(v, tf.mul(tf.sub(s, v), decay)));
      });
    });
  }

  /** Exchange the values of sources and shadows: the network now computes with the averaged weights. */
  swapIn(): void {
    this.check('swapIn');
    if (this.swapped) throw new Error('EMA.swapIn: already swapped in');
    this.exchange();
    this.swapped = true;
  }

  /** Undo {@link swapIn}: the training weights are back in the network, bit for bit. */
  swapOut(): void {
    this.check('swapOut');
    if (!this.swapped) throw new Error('EMA.swapOut: not swapped in');
    this.exchange();
    this.swapped = false;
  }

  /** Run synchronous `fn` with the averaged weights swapped in, then swap them out (also on throw). */
  apply<T>(fn: () => T): T {
    this.swapIn();
    try {
      return fn();
    } finally {
      this.swapOut();
    }
  }

  /** Release the shadows (not the sources). */
  dispose(): void {
    if (this.disposed) return;
    if (this.swapped) this.swapOut();
    this.disposed = true;
    for (const s of this.shadows) s.dispose();
  }

  private exchange(): void {
    tf.tidy(() => {
      this.sources.forEach(([, v], i) => {
        const s = this.shadows[i] as tf.Variable;
        const live = tf.clone(v);
        v.assign(s);
        s.assign(live);
      });
    });
  }

  private check(what: string): void {
    if (this.disposed) throw new Error(`EMA.${what}: disposed`);
  }
}

function checkDecay(decay: number): void {
  if (!(decay >= 0 && decay <= 1)) throw new Error(`EMA decay must be in [0, 1], got ${decay}`);
}
