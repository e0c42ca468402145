/**
 * The conditional progressive GAN for satellite image completion as a model unit: its light
 * descriptor (no tfjs). The heavy part is imported by {@link proganModel.load} when a run starts.
 */
import { IMAGE_DATA_FLAGS, IMAGE_DATA_OPTIONAL_KEYS, LOOP_FLAGS } from '../../training/config.js';
import { defineModel } from '../unit.js';
import { defaultProGanTrainConfig, PROGAN_PRESETS, scheduleConfigOf, validateProGanConfig, type ProGanTrainConfig } from './config.js';
import { schedule } from './schedule.js';

/**
 * The growth schedule of a run by step (one process; N workers show N times the images per step):
 * e.g. `steps 0-7: corner 4 stable`, `steps 8-23: corner 8 fade-in`. Long runs are scanned in at
 * most ~200,000 evenly spaced steps.
 */
export function growthPlan(config: ProGanTrainConfig): string[] {
  const cfg = scheduleConfigOf(config);
  const { steps, batchSize } = config.loop;
  const stride = Math.max(1, Math.ceil(steps / 200_000));
  const lines: string[] = [];
  let from = 0;
  let label = '';
  const push = (to: number) => {
    if (label !== '') lines.push(`steps ${from}-${to}: ${label}`);
  };
  for (let s = 0; s < steps; s += stride) {
    const st = schedule(s * batchSize, cfg);
    const l = `corner ${st.resolution} (images ${2 * st.resolution}x${2 * st.resolution}) ${st.phase === 'fade' ? 'fade-in' : 'stable'}`;
    if (l !== label) {
      push(s - 1);
      from = s;
      label = l;
    }
  }
  push(steps - 1);
  const final = scheduleConfigOf(config).maxResolution;
  const last = steps > 0 ? schedule((steps - 1) * batchSize, cfg) : null;
  if (last && last.resolution < final) lines.push(`the run ends at corner ${last.resolution}, before reaching corner ${final}: raise --steps to grow further`);
  return lines;
}

/** The `progan` model unit. */
export const proganModel = defineModel<ProGanTrainConfig>({
  name: 'progan',
  summary: 'conditional progressive GAN completing a missing image corner from the other three',
  defaults: defaultProGanTrainConfig,
  presets: PROGAN_PRESETS,
  optionalKeys: { ...IMAGE_DATA_OPTIONAL_KEYS, 'encoder.runDir': 'string', 'encoder.steps': 'number', 'ema.halfLifeKimg': 'number' },
  validate: validateProGanConfig,
  // Held-out SWD (x1e3, the ProGAN Laplacian-pyramid version) of the EMA generator: lower is better.
  bestMetric: { name: 'swd/mean', mode: 'min' },
  plan: (config) => growthPlan(config),
  statusMetrics: ['loss/d', 'loss/g', 'loss/d_global', 'loss/d_local'],
  flags: [
    ...IMAGE_DATA_FLAGS,
    ...LOOP_FLAGS,
    { name: 'resolution', path: 'progan.maxCornerResolution', type: 'number', describe: 'corner tile side in pixels (power of two)' },
    { name: 'latent-size', path: 'progan.latentDim', type: 'number', describe: 'latent size per corner' },
    { name: 'encoder', path: 'encoder.runDir', type: 'string', describe: 'a trained WAE run directory used as the frozen encoder (default: train one first)' },
    { name: 'encoder-steps', path: 'encoder.steps', type: 'number', describe: 'training steps of the encoder trained first (default: its preset\'s)' },
    { name: 'start-resolution', path: 'schedule.startResolution', type: 'number', describe: 'corner side the growth starts at' },
    { name: 'fade-kimg', path: 'schedule.fadeKimg', type: 'number', describe: 'thousands of images per fade-in phase' },
    { name: 'stable-kimg', path: 'schedule.stableKimg', type: 'number', describe: 'thousands of images per stabilising phase' },
    { name: 'lr-g', path: 'schedule.lrG', type: 'number', describe: 'generator learning rate' },
    { name: 'lr-d', path: 'schedule.lrD', type: 'number', describe: 'discriminators\' learning rate' },
    { name: 'global-weight', path: 'loss.globalWeight', type: 'number', describe: 'weight of the global discriminator vs the local one (0..1)' },
    { name: 'fmap-base', path: 'progan.fmapBase', type: 'number', describe: 'channel table base, nf = min(base / 2^stage, max)' },
    { name: 'fmap-max', path: 'progan.fmapMax', type: 'number', describe: 'channel table maximum' },
    { name: 'z-dim', path: 'progan.zDim', type: 'number', describe: 'noise size' },
    { name: 'conditioning', path: 'progan.conditioning', type: 'string', choices: ['latent', 'spatial'], describe: 'latent: the known corners\' WAE latents (the paper); spatial: also their pixels mirrored onto the missing corner, into every generator block, and beside the corner for the local critic' },
    { name: 'mbstd-group-size', path: 'progan.mbstdGroupSize', type: 'number', describe: 'minibatch-stddev group size of both discriminators (0 disables)' },
  ],
  load: async () => {
    const { trainProgan } = await import('./run.js');
    return { train: trainProgan };
  },
});
