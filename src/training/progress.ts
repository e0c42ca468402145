/**
 * A progress bar on stderr, only when stderr is a terminal, so it never mixes with the JSON log on stdout.
 * Without a terminal the status lines in the log carry the progress instead.
 */
import cliProgress from 'cli-progress';

/** A running progress display. */
export interface Progress {
  /** True when a bar is drawn (stderr is a TTY). */
  readonly active: boolean;
  /** Move the bar to `step`. */
  update(step: number): void;
  /** Remove the bar and restore the cursor. */
  stop(): void;
}

/** Create the progress display for a run to `total` steps starting at `start`. */
export function createProgress(total: number, start: number): Progress {
  if (!process.stderr.isTTY || process.env['CI']) {
    return { active: false, update() {}, stop() {} };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'training [{bar}] {value}/{total} steps | {percentage}% | eta {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
      gracefulExit: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, start);
  return {
    active: true,
    update: (step) => bar.update(step),
    stop: () => bar.stop(),
  };
}

/** The cost class of a training step: steps of one stage cost about the same. */
export interface StepStage {
  /** Stage name, e.g. `r16/fade`; steps with the same name share one measured cost. */
  name: string;
  /** Relative cost per step (any unit), used for stages not measured yet, e.g. pixels per image. */
  cost: number;
}

/**
 * Estimates the time left of a run whose steps differ in cost by stage (a progressive GAN's step at
 * corner 64 costs many times one at corner 4). Each stage's seconds per step are measured as the
 * run goes ({@link record}); a stage not reached yet is priced by its relative cost times the
 * seconds per cost unit measured so far (the most recent stage's rate, which reflects the current
 * machine load best).
 */
export class EtaEstimator {
  private readonly measured = new Map<string, { seconds: number; steps: number; cost: number }>();
  private lastRate: number | null = null;

  /** @param stageAt the stage of step `step`; default one stage for the whole run. */
  constructor(private readonly stageAt: (step: number) => StepStage = () => ({ name: 'run', cost: 1 })) {}

  /** Add `steps` steps of stage `stage` that took `seconds` in all. */
  record(stage: StepStage, steps: number, seconds: number): void {
    if (!(steps > 0) || !(seconds >= 0)) return;
    const m = this.measured.get(stage.name) ?? { seconds: 0, steps: 0, cost: stage.cost };
    m.seconds += seconds;
    m.steps += steps;
    this.measured.set(stage.name, m);
    if (stage.cost > 0) this.lastRate = seconds / steps / stage.cost;
  }

  /** Seconds per step measured for `name`, or null when none of its steps was recorded. */
  secondsPerStep(name: string): number | null {
    const m = this.measured.get(name);
    return m && m.steps > 0 ? m.seconds / m.steps : null;
  }

  /**
   * Seconds left for steps `[from, to)`; NaN before anything is measured. Long runs are priced in
   * at most ~2000 evenly spaced samples of the stage function.
   */
  remaining(from: number, to: number): number {
    if (to <= from) return 0;
    if (this.lastRate === null) return NaN;
    const stride = Math.max(1, Math.ceil((to - from) / 2000));
    let total = 0;
    for (let s = from; s < to; s += stride) {
      const n = Math.min(stride, to - s);
      const st = this.stageAt(s);
      total += n * (this.secondsPerStep(st.name) ?? st.cost * this.lastRate);
    }
    return total;
  }
}
