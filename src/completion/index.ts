/** Corner completion and image extension by iterative completion (REFERENCE.md section 2). */
export {
  checkCorner,
  completeImage,
  completeImages,
  completerFromModels,
  cornerOrigin,
  DEFAULT_CONDITION_ORDER,
  type ConditionOrder,
  type CornerCompleter,
  type ModelCompleterOptions,
} from './complete.js';
export { extendImage, planExtension, type ExtendOptions, type ExtensionPlan, type ExtensionStep, type MirrorFill } from './extend.js';
