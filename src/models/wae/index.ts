/**
 * The WAE-MMD corner encoder as a model unit: its light descriptor (no tfjs). The heavy part
 * (networks, objective, run wiring) is imported by {@link waeModel.load} when a run starts.
 */
import { IMAGE_DATA_FLAGS, IMAGE_DATA_OPTIONAL_KEYS, LOOP_FLAGS } from '../../training/config.js';
import { defineModel } from '../unit.js';
import { defaultWaeTrainConfig, validateWaeConfig, WAE_PRESETS, type WaeTrainConfig } from './config.js';

/** The `wae` model unit. */
export const waeModel = defineModel<WaeTrainConfig>({
  name: 'wae',
  summary: 'WAE-MMD corner encoder/decoder (the frozen encoder of the conditional ProGAN)',
  defaults: defaultWaeTrainConfig,
  presets: WAE_PRESETS,
  optionalKeys: { ...IMAGE_DATA_OPTIONAL_KEYS, 'wae.filters': 'number[]', 'wae.batchNorm': 'boolean' },
  validate: validateWaeConfig,
  statusMetrics: ['loss/rec', 'loss/mmd'],
  flags: [
    ...IMAGE_DATA_FLAGS,
    ...LOOP_FLAGS,
    { name: 'resolution', path: 'wae.cornerResolution', type: 'number', describe: 'corner tile side in pixels (power of two)' },
    { name: 'latent-size', path: 'wae.latentSize', type: 'number', describe: 'latent size per corner' },
    { name: 'lr', path: 'optim.lr', type: 'number', describe: 'learning rate' },
    { name: 'mmd-kernel', path: 'loss.kernel', type: 'string', choices: ['imq', 'rbf', 'cern'], describe: 'MMD kernel' },
    { name: 'mmd-weight', path: 'loss.lambda', type: 'number', describe: 'weight lambda of the MMD term' },
    { name: 'batch-norm', path: 'wae.batchNorm', type: 'boolean', describe: 'batch norm in the blocks (default on; --no-batch-norm for exact data-parallel parity)' },
  ],
  load: async () => {
    const { trainWae } = await import('./run.js');
    return { train: trainWae };
  },
});
