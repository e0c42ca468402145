/**
 * The 3DGAN networks (Khattak, Vallecorsa, Carminati et al.; REFERENCE.md §3): a generator of
 * calorimeter showers conditioned on the primary energy (and entry angle) and a discriminator with
 * a real/fake head, an energy-regression head and two fixed physics outputs measured from the image.
 *
 * Layout: images are NDHWC `[N, X, Y, Z, 1]` with X, Y transverse and Z the depth (51 x 51 x 25 for the
 * variable-angle data, 25 x 25 x 25 for the older fixed-angle data). Cell values are preprocessed
 * energies `E_cell^0.85` (GeV); the physics outputs undo the power first. The entry angle tilts the
 * shower in the Y-Z plane.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNorm3D, UpSampling3D, ZeroPadding3D, type Triple } from '../../layers/volume.js';

/** Which data layout (and so which pair of networks) to build. */
export type Gan3dGeometry = 'variable-angle' | 'fixed-angle';

/** Network options of the 3DGAN. Every field has a default (the paper's variable-angle networks). */
export interface Gan3dArgs {
  /** `variable-angle` (51x51x25, conditioned on E and theta) or `fixed-angle` (25^3, on E only). Default `variable-angle`. */
  geometry: Gan3dGeometry;
  /** Latent size including the conditioning inputs (E/100, theta for variable-angle). Default 256. */
  latentSize: number;
  /** Channels of the dense layer's reshaped volume (9,9,8,C). Default 8 (5184 units). */
  gDenseChannels: number;
  /** Generator conv filters: first conv, then the three padded convs, then the two 3x3 convs. Default [8, 6, 6, 6, 6, 6]. */
  gFilters: [number, number, number, number, number, number];
  /** Discriminator conv filters: the `same` conv, then the three valid convs. Default [16, 8, 8, 8]. */
  dFilters: [number, number, number, number];
  /** Discriminator dropout rate. Default 0.2. */
  dropout: number;
  /** LeakyReLU slope of the discriminator (Keras default). Default 0.3. */
  leak: number;
  /** Batch-norm momentum of the moving statistics (Keras default). Default 0.99. */
  batchNormMomentum: number;
  /** The data's power preprocessing `X^power`, undone by the physics outputs. Default 0.85. */
  power: number;
}

/** The paper's networks with any fields overridden; validates the result. */
export function defaultGan3dArgs(partial: Partial<Gan3dArgs> = {}): Gan3dArgs {
  const a: Gan3dArgs = {
    geometry: partial.geometry ?? 'variable-angle',
    latentSize: partial.latentSize ?? 256,
    gDenseChannels: partial.gDenseChannels ?? 8,
    gFilters: partial.gFilters ?? [8, 6, 6, 6, 6, 6],
    dFilters: partial.dFilters ?? [16, 8, 8, 8],
    dropout: partial.dropout ?? 0.2,
    leak: partial.leak ?? 0.3,
    batchNormMomentum: partial.batchNormMomentum ?? 0.99,
    power: partial.power ?? 0.85,
  };
  const cond = conditionSize(a.geometry);
  if (!Number.isInteger(a.latentSize) || a.latentSize <= cond) throw new Error(`Gan3dArgs.latentSize must be an integer > ${cond}, got ${a.latentSize}`);
  for (const f of [...a.gFilters, ...a.dFilters, a.gDenseChannels]) {
    if (!Number.isInteger(f) || f < 1) throw new Error(`Gan3dArgs filters must be positive integers, got ${JSON.stringify([a.gDenseChannels, a.gFilters, a.dFilters])}`);
  }
  if (!(a.dropout >= 0 && a.dropout < 1)) throw new Error(`Gan3dArgs.dropout must be in [0, 1), got ${a.dropout}`);
  if (!(a.power > 0)) throw new Error(`Gan3dArgs.power must be positive, got ${a.power}`);
  return a;
}

/** Number of conditioning inputs at the front of the latent vector: E/100 (and theta). */
export function conditionSize(geometry: Gan3dGeometry): number {
  return geometry === 'variable-angle' ? 2 : 1;
}

/** Image shape [X, Y, Z] of a geometry. */
export function imageShape(geometry: Gan3dGeometry): Triple {
  return geometry === 'variable-angle' ? [51, 51, 25] : [25, 25, 25];
}

function sym(x: tf.SymbolicTensor | tf.SymbolicTensor[] | tf.Tensor | tf.Tensor[]): tf.SymbolicTensor {
  if (!(x instanceof tf.SymbolicTensor)) throw new Error('expected one symbolic tensor');
  return x;
}

function expectShape(x: tf.SymbolicTensor, dims: number[], where: string): tf.SymbolicTensor {
  const got = x.shape.slice(1);
  if (got.length !== dims.length || got.some((d, i) => d !== dims[i])) {
    throw new Error(`3DGAN ${where}: expected [N, ${dims.join(', ')}], got [${x.shape.join(', ')}]`);
  }
  return x;
}

/** A generator block: optional zero padding, valid conv, activation, optional batch norm. */
function gBlock(x: tf.SymbolicTensor, name: string, filters: number, kernel: Triple, pad: Triple | null, bn: boolean, momentum: number, activation: 'relu' | 'linear' = 'relu'): tf.SymbolicTensor {
  let y = pad ? sym(new ZeroPadding3D({ padding: pad, name: `${name}_pad` }).apply(x)) : x;
  y = sym(tf.layers.conv3d({ filters, kernelSize: kernel, padding: 'valid', kernelInitializer: 'heUniform', activation, name: `${name}_conv` }).apply(y));
  return bn ? sym(new BatchNorm3D({ momentum, epsilon: 1e-3, name: `${name}_bn` }).apply(y)) : y;
}

/**
 * The generator: latent [N, latentSize] (conditioning first: E/100, theta, then N(0,1) noise) ->
 * preprocessed shower [N, X, Y, Z, 1] (ReLU output, so cells are >= 0).
 */
export function buildGan3dGenerator(args: Gan3dArgs): tf.LayersModel {
  const [f0, f1, f2, f3, f4, f5] = args.gFilters;
  const m = args.batchNormMomentum;
  const z = tf.input({ shape: [args.latentSize], name: 'g_latent' });
  if (args.geometry === 'variable-angle') {
    // Dense to a (9, 9, 8) volume, then upsample by 6 on each axis.
    let x = sym(tf.layers.dense({ units: 9 * 9 * 8 * args.gDenseChannels, kernelInitializer: 'heUniform', name: 'g_dense' }).apply(z)); // [N, 5184]
    x = sym(tf.layers.reshape({ targetShape: [9, 9, 8, args.gDenseChannels], name: 'g_reshape' }).apply(x)); // [N, 9, 9, 8, 8]
    x = sym(new UpSampling3D({ size: [6, 6, 6], name: 'g_up' }).apply(x)); // [N, 54, 54, 48, 8]
    x = expectShape(gBlock(x, 'g_b0', f0, [6, 6, 8], null, true, m), [49, 49, 41, f0], 'generator block 0'); // [N, 49, 49, 41, 8]
    x = gBlock(x, 'g_b1', f1, [4, 4, 6], [2, 2, 1], true, m); // [N, 50, 50, 38, 6]
    x = gBlock(x, 'g_b2', f2, [4, 4, 6], [2, 2, 1], true, m); // [N, 51, 51, 35, 6]
    x = expectShape(gBlock(x, 'g_b3', f3, [4, 4, 6], [2, 2, 1], true, m), [52, 52, 32, f3], 'generator block 3'); // [N, 52, 52, 32, 6]
    x = gBlock(x, 'g_b4', f4, [3, 3, 5], [1, 1, 0], true, m); // [N, 52, 52, 28, 6]
    x = gBlock(x, 'g_b5', f5, [3, 3, 3], [1, 1, 0], false, m); // [N, 52, 52, 26, 6]
    x = expectShape(gBlock(x, 'g_out', 1, [2, 2, 2], null, false, m), [51, 51, 25, 1], 'generator output'); // [N, 51, 51, 25, 1]
    return tf.model({ inputs: z, outputs: x, name: 'gan3d_generator' });
  }
  // Fixed-angle 25^3: the same kinds of blocks, from a (7, 7, 7) volume upsampled by 4 (see TSDoc of Gan3dArgs).
  let x = sym(tf.layers.dense({ units: 7 * 7 * 7 * args.gDenseChannels, kernelInitializer: 'heUniform', name: 'g_dense' }).apply(z)); // [N, 343 * C]
  x = sym(tf.layers.reshape({ targetShape: [7, 7, 7, args.gDenseChannels], name: 'g_reshape' }).apply(x)); // [N, 7, 7, 7, C]
  x = sym(new UpSampling3D({ size: [4, 4, 4], name: 'g_up' }).apply(x)); // [N, 28, 28, 28, C]
  x = gBlock(x, 'g_b0', f0, [4, 4, 4], null, true, m); // [N, 25, 25, 25, 8]
  x = gBlock(x, 'g_b1', f1, [3, 3, 3], [1, 1, 1], true, m); // [N, 25, 25, 25, 6]
  x = gBlock(x, 'g_b2', f2, [3, 3, 3], [1, 1, 1], true, m); // [N, 25, 25, 25, 6]
  x = gBlock(x, 'g_b3', f3, [3, 3, 3], [1, 1, 1], true, m); // [N, 25, 25, 25, 6]
  x = gBlock(x, 'g_b4', f4, [3, 3, 3], [1, 1, 1], true, m); // [N, 25, 25, 25, 6]
  x = gBlock(x, 'g_b5', f5, [3, 3, 3], [1, 1, 1], false, m); // [N, 25, 25, 25, 6]
  x = expectShape(gBlock(x, 'g_out', 1, [1, 1, 1], null, false, m), [25, 25, 25, 1], 'generator output'); // [N, 25, 25, 25, 1]
  return tf.model({ inputs: z, outputs: x, name: 'gan3d_generator' });
}

/**
 * The trained part of the discriminator: image [N, X, Y, Z, 1] -> [real/fake LOGIT [N, 1], energy
 * regression E/100 [N, 1]]. The logit (not the sigmoid probability) is returned so the loss can use
 * the numerically stable sigmoid cross-entropy; `sigmoid(logit)` is the reference's probability.
 */
export function buildGan3dDiscriminator(args: Gan3dArgs): tf.LayersModel {
  const [f0, f1, f2, f3] = args.dFilters;
  const shape = imageShape(args.geometry);
  const img = tf.input({ shape: [...shape, 1], name: 'd_image' });
  const act = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor => sym(tf.layers.leakyReLU({ alpha: args.leak, name: `${name}_lrelu` }).apply(x));
  const drop = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor => sym(tf.layers.dropout({ rate: args.dropout, name: `${name}_drop` }).apply(x));
  const bn = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor =>
    sym(new BatchNorm3D({ momentum: args.batchNormMomentum, epsilon: 1e-3, name: `${name}_bn` }).apply(x));
  const conv = (x: tf.SymbolicTensor, f: number, name: string, padding: 'same' | 'valid'): tf.SymbolicTensor =>
    sym(tf.layers.conv3d({ filters: f, kernelSize: [5, 6, 6], padding, name: `${name}_conv` }).apply(x));
  const pad = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor => sym(new ZeroPadding3D({ padding: [0, 0, 1], name: `${name}_pad` }).apply(x));
  // Stem: same conv, LeakyReLU, dropout.
  let x = drop(act(conv(img, f0, 'd_b0', 'same'), 'd_b0'), 'd_b0'); // [N, 51, 51, 25, 16]
  // Three valid convs, the first two after zero padding of the depth axis.
  x = drop(bn(act(conv(pad(x, 'd_b1'), f1, 'd_b1', 'valid'), 'd_b1'), 'd_b1'), 'd_b1'); // [N, 47, 46, 22, 8]
  x = drop(bn(act(conv(pad(x, 'd_b2'), f2, 'd_b2', 'valid'), 'd_b2'), 'd_b2'), 'd_b2'); // [N, 43, 41, 19, 8]
  x = drop(bn(act(conv(x, f3, 'd_b3', 'valid'), 'd_b3'), 'd_b3'), 'd_b3'); // [N, 39, 36, 14, 8]
  x = sym(tf.layers.averagePooling3d({ poolSize: 2, name: 'd_pool' }).apply(x)); // [N, 19, 18, 7, 8]
  const h = sym(tf.layers.flatten({ name: 'd_flatten' }).apply(x)); // [N, 19152]
  const logit = sym(tf.layers.dense({ units: 1, name: 'd_fake' }).apply(h)); // [N, 1]
  const energy = sym(tf.layers.dense({ units: 1, name: 'd_energy' }).apply(h)); // [N, 1]
  return tf.model({ inputs: img, outputs: [logit, energy], name: 'gan3d_discriminator' });
}

/** Every output of the discriminator on a batch, each [N]. */
export interface Gan3dDiscriminatorOutputs {
  /** Real/fake logit (sigmoid gives the probability of "real"). */
  logit: tf.Tensor1D;
  /** Regressed primary energy, in units of 100 GeV (E/100). */
  energy: tf.Tensor1D;
  /** Total deposited energy, GeV: the sum of the cells with the power preprocessing undone. */
  ecal: tf.Tensor1D;
  /** Measured entry angle, rad (see {@link measuredAngle}); absent for the fixed-angle geometry. */
  angle?: tf.Tensor1D;
}

/** Apply the discriminator and the fixed physics outputs to preprocessed images [N, X, Y, Z, 1]. */
export function discriminate(d: tf.LayersModel, images: tf.Tensor5D, args: Gan3dArgs, training: boolean): Gan3dDiscriminatorOutputs {
  // Returned from the tidy (not tf.keep'd), so an enclosing tidy or gradient scope still owns them.
  const [logit, energy, ecal, angle] = tf.tidy(() => {
    const [l, e] = d.apply(images, { training }) as tf.Tensor[];
    if (!l || !e) throw new Error('3DGAN discriminator must return [logit, energy]');
    const cells = undoPower(images, args.power); // [N, X, Y, Z, 1] GeV
    const outs: tf.Tensor1D[] = [tf.reshape(l, [-1]) as tf.Tensor1D, tf.reshape(e, [-1]) as tf.Tensor1D, tf.sum(cells, [1, 2, 3, 4]) as tf.Tensor1D];
    if (args.geometry === 'variable-angle') outs.push(measuredAngle(cells));
    return outs;
  });
  if (!logit || !energy || !ecal) throw new Error('3DGAN discriminator outputs missing');
  return angle ? { logit, energy, ecal, angle } : { logit, energy, ecal };
}

/** Cell energies in GeV from preprocessed cells `x = E^power`: `x^(1/power)` (cells are >= 0). */
export function undoPower(images: tf.Tensor5D, power: number): tf.Tensor5D {
  return tf.tidy(() => tf.pow(tf.relu(images), 1 / power));
}

/**
 * Measured entry angle of showers [N, X, Y, Z, 1] of cell energies (GeV), in rad, differentiable.
 *
 * Definition: per depth layer z the energy-weighted barycentre along Y, `b_z = sum(y E) / sum(E)`
 * (cell indices); the slope `s` of the straight line `b_z = a + s z` fitted by least squares with
 * the layer energies as weights; the angle `pi/2 - atan(s)` (in cell units: 90 deg for a shower
 * along Z, below 90 deg when Y grows with depth). Empty layers weigh nothing; an empty shower gives 90 deg.
 */
export function measuredAngle(cells: tf.Tensor5D): tf.Tensor1D {
  return tf.tidy(() => {
    const [, , ny = 0, nz = 0] = cells.shape;
    const eps = 1e-12;
    const perYZ = tf.sum(cells, [1, 4]); // [N, Y, Z]
    const w = tf.sum(perYZ, 1); // [N, Z] layer energies
    const ys = tf.reshape(tf.range(0, ny, 1, 'float32'), [1, ny, 1]);
    const zs = tf.reshape(tf.range(0, nz, 1, 'float32'), [1, nz]);
    const yMoment = tf.sum(tf.mul(perYZ, ys), 1); // [N, Z] = b_z * w_z
    const wTot = tf.add(tf.sum(w, 1, true), eps); // [N, 1]
    const zMean = tf.div(tf.sum(tf.mul(w, zs), 1, true), wTot); // [N, 1]
    const yMean = tf.div(tf.sum(yMoment, 1, true), wTot); // [N, 1]
    const dz = tf.sub(zs, zMean); // [N, Z]
    // sum_z w (z - zm)(b - bm) = sum_z (z - zm) (yMoment - w bm)
    const cov = tf.sum(tf.mul(dz, tf.sub(yMoment, tf.mul(w, yMean))), 1); // [N]
    const varZ = tf.add(tf.sum(tf.mul(w, tf.square(dz)), 1), eps); // [N]
    return tf.sub(Math.PI / 2, tf.atan(tf.div(cov, varZ))) as tf.Tensor1D;
  });
}

/** Number of trainable parameters of a model. */
export function countParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}
