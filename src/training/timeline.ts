/**
 * A Chrome trace (chrome://tracing, Perfetto) of the training loop, like Horovod's timeline: one
 * complete event per step part. Written incrementally as a JSON array whose closing bracket may be
 * missing, which both viewers accept, so a crash loses nothing already written.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

/** Appends trace events to a file. */
export class Timeline {
  private fd: number | null;
  private readonly pid: number;
  private readonly t0 = performance.now();

  /** Open `path` for this rank (its events go in process row `rank`). */
  constructor(path: string, rank = 0) {
    this.fd = openSync(path, 'w');
    this.pid = rank;
    writeSync(this.fd, '[\n');
    this.write({ name: 'process_name', ph: 'M', pid: rank, args: { name: `rank ${rank}` } });
  }

  private write(event: Record<string, unknown>): void {
    if (this.fd !== null) writeSync(this.fd, `${JSON.stringify(event)},\n`);
  }

  /** Record that `name` ran from `start` to `end` (performance.now() milliseconds). */
  span(name: string, start: number, end: number, args?: Record<string, unknown>): void {
    this.write({ name, ph: 'X', pid: this.pid, tid: 0, ts: Math.round((start - this.t0) * 1000), dur: Math.round((end - start) * 1000), ...(args ? { args } : {}) });
  }

  /** Close the file. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
