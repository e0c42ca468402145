import { describe, expect, it } from 'vitest';
import { defaultProGanTrainConfig, encoderWaeConfig, resolveProGanConfig, scheduleConfigOf } from '../src/models/progan/config.js';
import { CERN_SCHEDULE, defaultScheduleConfig, growthNimg, schedule, validateScheduleConfig, type ScheduleConfig } from '../src/models/progan/schedule.js';

// Corners 4 -> 8 -> 16 -> 32 with 1 kimg fades and 2 kimg stabilisation: the first resolution is stable
// on [0, 2000), 8 fades on [2000, 3000) and is stable on [3000, 5000), 16 fades on [5000, 6000) ...
const cfg: ScheduleConfig = { ...defaultScheduleConfig(32), fadeKimg: 1, stableKimg: 2, lrGByResolution: { '16': 5e-4 }, lrDByResolution: { '32': 2e-4 } };

describe('schedule', () => {
  it.each([
    // nimg, resolution, phase, alpha, stage, stageStart, phaseStart
    [0, 4, 'stable', 1, 0, 0, 0],
    [1999, 4, 'stable', 1, 0, 0, 0],
    [2000, 8, 'fade', 0, 1, 2000, 2000],
    [2250, 8, 'fade', 0.25, 1, 2000, 2000],
    [2500, 8, 'fade', 0.5, 1, 2000, 2000],
    [2999, 8, 'fade', 0.999, 1, 2000, 2000],
    [3000, 8, 'stable', 1, 1, 2000, 3000],
    [4999, 8, 'stable', 1, 1, 2000, 3000],
    [5000, 16, 'fade', 0, 2, 5000, 5000],
    [5750, 16, 'fade', 0.75, 2, 5000, 5000],
    [6000, 16, 'stable', 1, 2, 5000, 6000],
    [8000, 32, 'fade', 0, 3, 8000, 8000],
    [8500, 32, 'fade', 0.5, 3, 8000, 8000],
    [9000, 32, 'stable', 1, 3, 8000, 9000],
    // The last resolution stays stable for ever.
    [11000, 32, 'stable', 1, 3, 8000, 9000],
    [1e12, 32, 'stable', 1, 3, 8000, 9000],
  ] as const)('at %d images: corner %d, %s, alpha %d', (nimg, resolution, phase, alpha, stage, stageStart, phaseStart) => {
    const s = schedule(nimg, cfg);
    expect(s.resolution).toBe(resolution);
    expect(s.phase).toBe(phase);
    expect(s.alpha).toBeCloseTo(alpha, 12);
    expect(s.stage).toBe(stage);
    expect(s.stageStartNimg).toBe(stageStart);
    expect(s.phaseStartNimg).toBe(phaseStart);
  });

  it('looks learning rates up per resolution with the global values as fallback', () => {
    expect([0, 2500, 5500, 9000].map((n) => [schedule(n, cfg).lrG, schedule(n, cfg).lrD])).toEqual([
      [1e-3, 1e-3],
      [1e-3, 1e-3],
      [5e-4, 1e-3],
      [1e-3, 2e-4],
    ]);
  });

  it('takes per-resolution lengths, skips zero-length phases and starts where asked', () => {
    const c: ScheduleConfig = { ...cfg, startResolution: 8, fadeKimgByResolution: { '16': 0 }, stableKimgByResolution: { '8': 0.5 } };
    // 8 is first: stable for 500 images, no fade; 16 has no fade; 32 fades over 1000.
    expect(schedule(0, c)).toMatchObject({ resolution: 8, phase: 'stable', alpha: 1, stage: 0 });
    expect(schedule(500, c)).toMatchObject({ resolution: 16, phase: 'stable', alpha: 1, stage: 1, stageStartNimg: 500 });
    expect(schedule(2500, c)).toMatchObject({ resolution: 32, phase: 'fade', alpha: 0, stage: 2 });
    expect(growthNimg(c)).toBe(3500);
    expect(growthNimg(cfg)).toBe(9000);
    // A single resolution is stable from the first image.
    expect(schedule(0, { ...cfg, startResolution: 32 })).toMatchObject({ resolution: 32, phase: 'stable', alpha: 1, stage: 0 });
  });

  it('defaults to ProGAN 600 + 600 kimg and lr 1e-3, with the CERN numbers as a preset', () => {
    const d = defaultScheduleConfig(128);
    expect([d.startResolution, d.fadeKimg, d.stableKimg, d.lrG, d.lrD]).toEqual([4, 600, 600, 1e-3, 1e-3]);
    expect(CERN_SCHEDULE).toEqual({ fadeKimg: 1500, stableKimg: 300, lrG: 2e-3, lrD: 1e-3 });
    expect(schedule(600_000, d)).toMatchObject({ resolution: 8, phase: 'fade', alpha: 0 });
    expect(schedule(900_000, d)).toMatchObject({ resolution: 8, phase: 'fade', alpha: 0.5 });
    const cern = scheduleConfigOf(resolveProGanConfig({ preset: 'cern' }));
    expect(schedule(300_000 + 750_000, cern)).toMatchObject({ resolution: 8, phase: 'fade', alpha: 0.5, lrG: 2e-3, lrD: 1e-3 });
    expect(schedule(300_000 + 1_500_000, cern)).toMatchObject({ resolution: 8, phase: 'stable' });
  });

  it('rejects invalid settings by name', () => {
    expect(() => validateScheduleConfig({ ...cfg, startResolution: 6 })).toThrow(/startResolution/);
    expect(() => validateScheduleConfig({ ...cfg, startResolution: 64 })).toThrow(/exceeds/);
    expect(() => validateScheduleConfig({ ...cfg, fadeKimg: -1 })).toThrow(/fadeKimg/);
    expect(() => validateScheduleConfig({ ...cfg, lrD: 0 })).toThrow(/lrD/);
    expect(() => validateScheduleConfig({ ...cfg, lrGByResolution: { '12': 1e-3 } })).toThrow(/lrGByResolution/);
  });
});

describe('ProGAN run config', () => {
  it('defaults to the reference and validates by flag', () => {
    const d = defaultProGanTrainConfig();
    expect(d.progan).toMatchObject({ maxCornerResolution: 128, zDim: 2048, latentDim: 2048, fmapBase: 8192, fmapMax: 512 });
    expect(d.optim).toMatchObject({ beta1: 0, beta2: 0.99, epsilon: 1e-8 });
    expect(d.loss).toMatchObject({ globalWeight: 0.5, gpWeight: 10, drift: 0.001, combination: 'reference' });
    expect(d.ema.decay).toBe(0.999);
    expect(d.schedule.minibatchRepeats).toBe(4);
    expect(() => resolveProGanConfig({ flags: { schedule: { startResolution: 256 } } })).toThrow(/--start-resolution/);
    expect(() => resolveProGanConfig({ flags: { loss: { globalWeight: 2 } } })).toThrow(/--global-weight/);
    expect(() => resolveProGanConfig({ preset: 'huge' })).toThrow(/--preset/);
  });

  it('resolves every preset, each growing to its largest corner within its steps', () => {
    for (const preset of ['tiny', 'small', 'paper', 'cern']) {
      const c = resolveProGanConfig({ preset });
      const w = encoderWaeConfig(c);
      expect(w.wae.cornerResolution, preset).toBe(c.progan.maxCornerResolution);
      expect(w.wae.latentSize, preset).toBe(c.progan.latentDim);
      const s = scheduleConfigOf(c);
      expect(growthNimg(s), preset).toBeLessThan(c.loop.steps * c.loop.batchSize);
      expect(schedule(c.loop.steps * c.loop.batchSize, s).resolution, preset).toBe(c.progan.maxCornerResolution);
    }
  });

  it('derives a matching WAE config for the encoder it trains', () => {
    const c = resolveProGanConfig({ preset: 'tiny', flags: { progan: { maxCornerResolution: 8, latentDim: 8 } } });
    const w = encoderWaeConfig(c);
    expect(w.wae.cornerResolution).toBe(8);
    expect(w.wae.latentSize).toBe(8);
    expect(w.wae.filters).toEqual([16]);
    expect(w.data.channels).toBe(c.data.channels);
    expect(w.loop.steps).toBe(100);
  });
});
