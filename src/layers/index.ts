/**
 * Custom ProGAN layers and their functional forms. Importing this module registers every layer
 * class with `tf.serialization` (so saved models that use them can be loaded).
 */
export { lrelu, LRELU_ALPHA, ProGanLeakyReLU, type ProGanLeakyReLUArgs } from './activation.js';
export { applyLayer, type BaseLayerArgs, LAYER_PACKAGE } from './common.js';
export {
  DEFAULT_GAIN,
  EqualizedConv2D,
  type EqualizedConv2DArgs,
  EqualizedDense,
  type EqualizedDenseArgs,
} from './equalized.js';
export { FadeIn, type FadeInArgs, fadeIn } from './fade-in.js';
export {
  DEFAULT_MBSTD_GROUP_SIZE,
  MinibatchStdDev,
  type MinibatchStdDevArgs,
  minibatchGroupSize,
  minibatchStdDev,
} from './minibatch-stddev.js';
export { PIXEL_NORM_EPSILON, PixelNorm, type PixelNormArgs, pixelNorm } from './pixel-norm.js';
export {
  DownscaleBox2D,
  downscale2d,
  type ResampleArgs,
  UpscaleNearest2D,
  upscale2d,
} from './resample.js';
export {
  BatchNorm3D,
  type BatchNorm3DArgs,
  type Triple,
  UpSampling3D,
  type UpSampling3DArgs,
  upsample3d,
  ZeroPadding3D,
  type ZeroPadding3DArgs,
  zeroPad3d,
} from './volume.js';
