/**
 * The data module: image folders (sharp), synthetic satellite-like tiles, corner tiling and the
 * input pipeline. Tensor-free: batches are NHWC Float32Arrays in [-1, 1].
 */

export {
  loadImageFolder,
  bytesToUnit,
  BadImageFilesError,
  DEFAULT_IMAGE_EXTENSIONS,
  type ImageFolderOptions,
  type ImageFolderDataset,
  type BadImageFile,
} from './images.js';
export {
  openRaster,
  decodeImageFile,
  applyMapping,
  mappingFromSamples,
  defaultMappingSpec,
  validateMapping,
  UnusableImage,
  type RasterHeader,
  type RasterOptions,
  type RasterRegion,
  type RasterSource,
  type ValueMapping,
  type MappingSpec,
  type DecodedImage,
  type DecodeImageOptions,
} from './raster.js';
export { openScenes, listSceneFiles, splitScenes, SCENE_EXTENSIONS, type SceneOptions, type SceneSet, type SceneWindow, type SceneListing, type SkippedEntry, type SceneCounters } from './scenes.js';
export { syntheticTiles, renderTile, SyntheticTileDataset, type SyntheticTilesOptions } from './synthetic.js';
export { splitCorners, joinCorners, flipH, flipV, cornerFlips, orientCorner, CORNERS, type Corner } from './corners.js';
export { Pipeline, type ImageDataset, type HostBatch, type HostField, type PipelineState, type PipelineOptions } from './pipeline.js';
export type { Augmentation, Example, ExampleDataset, ExampleSpec, FieldSpec, FieldDtype } from './pipeline.js';
export { imageExamples, horizontalFlip, cachedExamples } from './examples.js';
