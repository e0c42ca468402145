/**
 * Image-quality metrics of the progressive GAN that need no pretrained network: the sliced
 * Wasserstein distance on a Laplacian pyramid (realism) and MS-SSIM (diversity of generated images).
 * Plain NHWC Float32Arrays in, numbers out; every random draw is seeded.
 */
export {
  slicedWassersteinDistance,
  slicedWasserstein,
  wasserstein1Sorted,
  laplacianPyramid,
  collapseLaplacianPyramid,
  swdResolutions,
  wasmSwdKernelAvailable,
} from './swd.js';
export type { ImageShape, SwdOptions, SwdResult, SwdLevel, PyramidLevel, SlicedWassersteinOptions, SwdKernel } from './swd.js';
export { ssim, msSsim, meanPairwiseMsSsim, msSsimScales, MS_SSIM_WEIGHTS } from './ms-ssim.js';
export type { SsimOptions, MsSsimOptions, MeanPairwiseMsSsimOptions } from './ms-ssim.js';
export { BASELINES, baselineCorners, bottomRightCorners, pasteBottomRight, seamEnergy, scoreCompletion, scoreBaselines } from './baselines.js';
export type { BaselineName, CompletionScores, ScoreOptions } from './baselines.js';
export {
  comparePhysics,
  HIT_THRESHOLD,
  measuredAngleOf,
  referenceBins,
  selectionMetric,
  showerFeatures,
  SPARSITY_THRESHOLDS,
  SPECTRUM_EDGES,
  summariseBins,
} from './physics.js';
export type { BinSummary, PhysicsBin, PhysicsComparison, ShowerFeatures, ShowerSet } from './physics.js';
