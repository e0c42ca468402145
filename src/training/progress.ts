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
