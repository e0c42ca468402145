/**
 * The 3DGAN calorimeter-shower simulator as a model unit (`proggan train 3dgan`): its light
 * descriptor (no tfjs). The heavy part (data, networks, objective, physics validation) is imported
 * by {@link gan3dModel.load} when a run starts.
 */
import { defineModel } from '../unit.js';
import { defaultGan3dTrainConfig, GAN3D_FLAGS, GAN3D_PRESETS, validateGan3dConfig, type Gan3dTrainConfig } from './config.js';

/** The `3dgan` model unit. */
export const gan3dModel = defineModel<Gan3dTrainConfig>({
  name: '3dgan',
  summary: '3DGAN calorimeter shower simulator (51x51x25 or 25^3 showers from energy and angle) with physics validation',
  defaults: defaultGan3dTrainConfig,
  presets: GAN3D_PRESETS,
  optionalKeys: { 'data.dir': 'string', 'data.evalData': 'string' },
  validate: validateGan3dConfig,
  flags: GAN3D_FLAGS,
  bestMetric: { name: 'physics/metric', mode: 'min' },
  load: async () => {
    const { trainGan3d } = await import('./run.js');
    return { train: trainGan3d };
  },
});
