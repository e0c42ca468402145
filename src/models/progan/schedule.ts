/**
 * The progressive-growing schedule as a pure function of the images shown so far: which corner
 * resolution is trained, how far its newest block has faded in, and the learning rates.
 *
 * Shape of a run (ProGAN, Karras et al. 2018): the first resolution trains at full strength
 * (`stable`) for its stabilise length and has no fade; every later resolution first fades in over
 * its fade length (alpha 0 -> 1, `fade`) and then stabilises (alpha 1). The last resolution stays
 * stable for ever. Lengths are in thousands of real images (kimg), so they do not depend on the batch
 * size. At the exact first image of a fade the new resolution is active with alpha 0, which gives
 * the same outputs as the previous resolution (upsampled).
 *
 * The batch size is fixed for a whole run (the data pipeline has one batch size), so unlike ProGAN
 * this schedule has no per-resolution batch-size table.
 */

/** Settings of {@link schedule}; resolutions are corner sides R' (the generated corner), not full images. */
export interface ScheduleConfig {
  /** Corner side the run starts at; a power of two >= 4. Default 4. */
  startResolution: number;
  /** Largest corner side (the model's maxCornerResolution); a power of two >= startResolution. Required. */
  maxResolution: number;
  /** kimg over which each new resolution fades in. Default 600 (ProGAN; CERN: 1500). */
  fadeKimg: number;
  /** kimg each resolution trains at alpha 1 after its fade (the first resolution: only this). Default 600 (ProGAN; CERN: 300). */
  stableKimg: number;
  /** Per-resolution overrides of fadeKimg, keyed by corner side (e.g. `{"64": 800}`). Default {}. */
  fadeKimgByResolution: Record<string, number>;
  /** Per-resolution overrides of stableKimg, keyed by corner side. Default {}. */
  stableKimgByResolution: Record<string, number>;
  /** Adam learning rate of the generator. Default 1e-3 (ProGAN; CERN: 2e-3). */
  lrG: number;
  /** Adam learning rate of the discriminators. Default 1e-3. */
  lrD: number;
  /** Per-resolution overrides of lrG, keyed by corner side. Default {}. */
  lrGByResolution: Record<string, number>;
  /** Per-resolution overrides of lrD, keyed by corner side. Default {}. */
  lrDByResolution: Record<string, number>;
}

/** Where a run stands at a given number of images shown. */
export interface ScheduleState {
  /** Current corner side R' (the generated corner; the global discriminator sees 2R'). */
  resolution: number;
  /** Fade-in weight of the newest block in [0, 1]; exactly 1 when stable. */
  alpha: number;
  /** `fade` while the newest block blends in, `stable` afterwards. */
  phase: 'fade' | 'stable';
  /** Index of the resolution in startResolution, 2 startResolution, ..., maxResolution. */
  stage: number;
  /** Generator learning rate at this resolution. */
  lrG: number;
  /** Discriminator learning rate at this resolution. */
  lrD: number;
  /** Images shown when this resolution began (its fade start; 0 for the first). */
  stageStartNimg: number;
  /** Images shown when the current phase (fade or stable) began. */
  phaseStartNimg: number;
}

/** ProGAN's schedule and learning rates (the defaults); maxResolution must still be given. */
export function defaultScheduleConfig(maxResolution: number): ScheduleConfig {
  return {
    startResolution: 4,
    maxResolution,
    fadeKimg: 600,
    stableKimg: 600,
    fadeKimgByResolution: {},
    stableKimgByResolution: {},
    lrG: 1e-3,
    lrD: 1e-3,
    lrGByResolution: {},
    lrDByResolution: {},
  };
}

/**
 * The CERN code's defaults: 1500 kimg fade + 300 kimg stabilise, lr G 2e-3 and D 1e-3 (the CERN
 * code swapped the two by mistake; these are the intended values).
 */
export const CERN_SCHEDULE: Readonly<Pick<ScheduleConfig, 'fadeKimg' | 'stableKimg' | 'lrG' | 'lrD'>> = {
  fadeKimg: 1500,
  stableKimg: 300,
  lrG: 2e-3,
  lrD: 1e-3,
};

function isPow2AtLeast4(n: number): boolean {
  return Number.isInteger(n) && n >= 4 && (n & (n - 1)) === 0;
}

/** The corner sides a run trains at, from startResolution to maxResolution. */
export function scheduleResolutions(cfg: Pick<ScheduleConfig, 'startResolution' | 'maxResolution'>): number[] {
  const out: number[] = [];
  for (let r = cfg.startResolution; r <= cfg.maxResolution; r *= 2) out.push(r);
  return out;
}

/** Throw an Error naming the first invalid field of `cfg`. */
export function validateScheduleConfig(cfg: ScheduleConfig): void {
  if (!isPow2AtLeast4(cfg.startResolution)) throw new Error(`startResolution must be a power of two >= 4, got ${cfg.startResolution}`);
  if (!isPow2AtLeast4(cfg.maxResolution)) throw new Error(`maxResolution must be a power of two >= 4, got ${cfg.maxResolution}`);
  if (cfg.startResolution > cfg.maxResolution) {
    throw new Error(`startResolution ${cfg.startResolution} exceeds maxResolution ${cfg.maxResolution}`);
  }
  const nonNegative = (what: string, v: number) => {
    if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${what} must be a finite number >= 0, got ${v}`);
  };
  const positive = (what: string, v: number) => {
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`${what} must be a finite number > 0, got ${v}`);
  };
  nonNegative('fadeKimg', cfg.fadeKimg);
  nonNegative('stableKimg', cfg.stableKimg);
  positive('lrG', cfg.lrG);
  positive('lrD', cfg.lrD);
  const tables: Array<[string, Record<string, number>, (what: string, v: number) => void]> = [
    ['fadeKimgByResolution', cfg.fadeKimgByResolution, nonNegative],
    ['stableKimgByResolution', cfg.stableKimgByResolution, nonNegative],
    ['lrGByResolution', cfg.lrGByResolution, positive],
    ['lrDByResolution', cfg.lrDByResolution, positive],
  ];
  for (const [name, table, check] of tables) {
    for (const [key, v] of Object.entries(table)) {
      if (!isPow2AtLeast4(Number(key))) throw new Error(`${name}: key "${key}" is not a corner resolution (a power of two >= 4)`);
      check(`${name}[${key}]`, v);
    }
  }
}

function lookup(table: Record<string, number>, resolution: number, fallback: number): number {
  return table[String(resolution)] ?? fallback;
}

/**
 * Where a run stands after `curNimg` real images: resolution, fade alpha, phase and learning rates.
 * Pure and cheap; the caller validates `cfg` once (see {@link validateScheduleConfig}).
 */
export function schedule(curNimg: number, cfg: ScheduleConfig): ScheduleState {
  const resolutions = scheduleResolutions(cfg);
  const nimg = Math.max(0, curNimg);
  let start = 0;
  for (let stage = 0; stage < resolutions.length; stage++) {
    const resolution = resolutions[stage] as number;
    const fade = stage === 0 ? 0 : 1000 * lookup(cfg.fadeKimgByResolution, resolution, cfg.fadeKimg);
    const stable = 1000 * lookup(cfg.stableKimgByResolution, resolution, cfg.stableKimg);
    const last = stage === resolutions.length - 1;
    const lrs = { lrG: lookup(cfg.lrGByResolution, resolution, cfg.lrG), lrD: lookup(cfg.lrDByResolution, resolution, cfg.lrD) };
    // Fade the newest block in, then train it at full strength (for ever at the last resolution).
    if (nimg < start + fade) {
      return { resolution, alpha: (nimg - start) / fade, phase: 'fade', stage, ...lrs, stageStartNimg: start, phaseStartNimg: start };
    }
    if (last || nimg < start + fade + stable) {
      return { resolution, alpha: 1, phase: 'stable', stage, ...lrs, stageStartNimg: start, phaseStartNimg: start + fade };
    }
    start += fade + stable;
  }
  throw new Error('unreachable: the last resolution is stable for ever');
}

/** Images needed to reach the stable phase of the last resolution (the end of growing). */
export function growthNimg(cfg: ScheduleConfig): number {
  const resolutions = scheduleResolutions(cfg);
  let total = 0;
  resolutions.forEach((r, stage) => {
    if (stage > 0) total += 1000 * lookup(cfg.fadeKimgByResolution, r, cfg.fadeKimg);
    if (stage < resolutions.length - 1) total += 1000 * lookup(cfg.stableKimgByResolution, r, cfg.stableKimg);
  });
  return total;
}
