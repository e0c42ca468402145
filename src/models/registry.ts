/**
 * Every model `proggan` knows, one line each. Adding a model = its folder `src/models/<name>/`
 * (an `index.ts` exporting a {@link ModelDescriptor}) + one line here. The CLI (`train`, `--resume`,
 * `--dry-run`, `--help`), the library API and the worker entry read this list and never branch on a
 * model's name. Light: importing it loads no tfjs (each descriptor's heavy part loads on `load()`).
 */
import { UsageError } from '../util/errors.js';
import { gan3dModel } from './gan3d/index.js';
import { proganModel } from './progan/index.js';
import type { ModelConfig, ModelDescriptor } from './unit.js';
import { waeModel } from './wae/index.js';

/** The registered models; the first is the default of `proggan train`. */
export const MODELS: readonly ModelDescriptor<ModelConfig>[] = [
  proganModel,
  waeModel,
  gan3dModel,
];

/** Names of the registered models, in registry order. */
export function modelNames(models: readonly ModelDescriptor<ModelConfig>[] = MODELS): string[] {
  return models.map((m) => m.name);
}

/** The descriptor named `name`; a UsageError listing the registered models otherwise. */
export function findModel(name: string, models: readonly ModelDescriptor<ModelConfig>[] = MODELS): ModelDescriptor<ModelConfig> {
  const m = models.find((d) => d.name === name);
  if (!m) throw new UsageError(`unknown model "${name}": proggan trains ${modelNames(models).join(', ')}`);
  return m;
}
