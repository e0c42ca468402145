/**
 * Training statistics: `report(name, value)` from anywhere, collected once per tick.
 *
 * Per name, a tick keeps the sum, count, min and max of the reported values. {@link Stats.drain}
 * hands them out as Float64Arrays in sorted name order, so a distributed run can all-reduce them
 * (sums and counts by SUM, mins by MIN, maxs by MAX) and rebuild the means with
 * {@link summarize}. Rank 0 then writes the tick as a status line ({@link formatStatusLine}) and a
 * line of `stats.jsonl` ({@link StatsJsonlWriter}).
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Summary of one statistic over one tick. */
export interface StatSummary {
  /** Mean of the reported values. */
  mean: number;
  /** Smallest reported value. */
  min: number;
  /** Largest reported value. */
  max: number;
  /** How many values were reported. */
  count: number;
}

/** One tick's statistics by name, in sorted name order; names with no values are left out. */
export type TickRecord = Record<string, StatSummary>;

/**
 * Raw per-tick accumulators, one slot per name. The layout is fixed by `names` (sorted), so ranks
 * that declared the same names produce arrays that can be reduced element-wise.
 */
export interface StatsBuffers {
  /** Statistic names, sorted; slot `i` of every array belongs to `names[i]`. */
  names: string[];
  /** Sum of the values per name (reduce with SUM). */
  sums: Float64Array;
  /** Number of values per name (reduce with SUM). */
  counts: Float64Array;
  /** Smallest value per name, `Infinity` when none (reduce with MIN). */
  mins: Float64Array;
  /** Largest value per name, `-Infinity` when none (reduce with MAX). */
  maxs: Float64Array;
}

interface Accumulator {
  sum: number;
  count: number;
  min: number;
  max: number;
}

/** Collects reported values between ticks. */
export class Stats {
  private readonly declared = new Set<string>();
  private acc = new Map<string, Accumulator>();

  /** @param names statistics that always get a slot in {@link drain}, even with no values. */
  constructor(names: Iterable<string> = []) {
    this.declare(...names);
  }

  /**
   * Give `names` a slot in every {@link drain}, reported or not. Declare the same names on every
   * rank so that their buffers line up for an all-reduce.
   */
  declare(...names: string[]): void {
    for (const n of names) this.declared.add(n);
  }

  /** Add one value, or every value of an array, to statistic `name` for the current tick. */
  report(name: string, value: number | ArrayLike<number>): void {
    let a = this.acc.get(name);
    if (a === undefined) {
      a = { sum: 0, count: 0, min: Infinity, max: -Infinity };
      this.acc.set(name, a);
    }
    if (typeof value === 'number') {
      add(a, value);
    } else {
      for (let i = 0; i < value.length; i++) add(a, value[i] ?? NaN);
    }
  }

  /** The names {@link drain} would give a slot now: the declared and the reported ones, sorted. */
  names(): string[] {
    return [...new Set([...this.declared, ...this.acc.keys()])].sort();
  }

  /**
   * Move every value `other` collected since its last drain into this tick (and empty `other`): the
   * trainer absorbs {@link defaultStats} after each step, so `report()` from any module reaches the
   * status line, stats.jsonl and TensorBoard.
   */
  absorb(other: Stats): void {
    if (other === this) return;
    for (const [name, a] of other.acc) {
      const mine = this.acc.get(name);
      if (mine === undefined) {
        this.acc.set(name, { ...a });
      } else {
        mine.sum += a.sum;
        mine.count += a.count;
        mine.min = Math.min(mine.min, a.min);
        mine.max = Math.max(mine.max, a.max);
      }
    }
    other.acc = new Map();
  }

  /**
   * Take the accumulators of this tick and start a new one. Slots follow the sorted union of the
   * declared and the reported names.
   */
  drain(): StatsBuffers {
    const names = [...new Set([...this.declared, ...this.acc.keys()])].sort();
    const buffers = emptyBuffers(names);
    names.forEach((name, i) => {
      const a = this.acc.get(name);
      if (a === undefined) return;
      buffers.sums[i] = a.sum;
      buffers.counts[i] = a.count;
      buffers.mins[i] = a.min;
      buffers.maxs[i] = a.max;
    });
    this.acc = new Map();
    return buffers;
  }

  /** Summarise this tick (mean, min, max, count per name) and start a new one. */
  tick(): TickRecord {
    return summarize(this.drain());
  }
}

/** Empty accumulators for `names` (kept in the given order). */
export function emptyBuffers(names: string[]): StatsBuffers {
  const n = names.length;
  return {
    names: [...names],
    sums: new Float64Array(n),
    counts: new Float64Array(n),
    mins: new Float64Array(n).fill(Infinity),
    maxs: new Float64Array(n).fill(-Infinity),
  };
}

/** Turn (possibly all-reduced) accumulators into per-name summaries; names with count 0 are left out. */
export function summarize(buffers: StatsBuffers): TickRecord {
  const { names, sums, counts, mins, maxs } = buffers;
  const n = names.length;
  if (sums.length !== n || counts.length !== n || mins.length !== n || maxs.length !== n) {
    throw new RangeError(`stats buffers hold ${sums.length}/${counts.length}/${mins.length}/${maxs.length} slots for ${n} names`);
  }
  const out: TickRecord = {};
  for (let i = 0; i < n; i++) {
    const count = counts[i] ?? 0;
    if (count <= 0) continue;
    out[names[i] ?? ''] = { mean: (sums[i] ?? NaN) / count, min: mins[i] ?? NaN, max: maxs[i] ?? NaN, count };
  }
  return out;
}

/** Just the means of a tick, e.g. for `TensorBoardWriter.scalars(means(tick), step)` or the status line. */
export function means(tick: TickRecord): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, s] of Object.entries(tick)) out[name] = s.mean;
  return out;
}

/**
 * Reduce accumulators from several ranks (or ticks) the way an all-reduce would: sums and counts
 * added, min of mins, max of maxs. All inputs must have the same names in the same order.
 */
export function combineBuffers(parts: StatsBuffers[]): StatsBuffers {
  const first = parts[0];
  if (first === undefined) return emptyBuffers([]);
  const out = emptyBuffers(first.names);
  for (const p of parts) {
    if (p.names.length !== first.names.length || p.names.some((name, i) => name !== first.names[i])) {
      throw new Error(`stats buffers disagree on names: [${p.names.join(', ')}] vs [${first.names.join(', ')}]`);
    }
    for (let i = 0; i < first.names.length; i++) {
      out.sums[i] = (out.sums[i] ?? 0) + (p.sums[i] ?? 0);
      out.counts[i] = (out.counts[i] ?? 0) + (p.counts[i] ?? 0);
      out.mins[i] = Math.min(out.mins[i] ?? Infinity, p.mins[i] ?? Infinity);
      out.maxs[i] = Math.max(out.maxs[i] ?? -Infinity, p.maxs[i] ?? -Infinity);
    }
  }
  return out;
}

function add(a: Accumulator, v: number): void {
  a.sum += v;
  a.count += 1;
  // Math.min/max propagate NaN, so a NaN value shows in min, max and mean alike.
  a.min = Math.min(a.min, v);
  a.max = Math.max(a.max, v);
}

/** The process-wide collector behind {@link report}; the trainer ticks it. */
export const defaultStats = new Stats();

/**
 * Report a value to {@link defaultStats}: usable from any module (an objective, a layer, a data
 * reader) without passing objects around. The running trainer absorbs it after each step, so it
 * reaches that tick's status line, stats.jsonl and TensorBoard (averaged over the replicas).
 */
export function report(name: string, value: number | ArrayLike<number>): void {
  defaultStats.report(name, value);
}

/** A value of the status line: a number, text, `{ of: [done, total] }` or `{ seconds }`. */
export type StatusField = number | string | { of: [number, number] } | { seconds: number };

/**
 * One compact human line, fields separated by two spaces, e.g.
 * `step 120/1000  kimg 1.9  loss/rec 0.0412  img/s 45.1  eta 5m12s`. Numbers get about four
 * significant digits, integers stay whole, `{ seconds }` becomes a duration like `5m12s`.
 * `undefined` fields are skipped.
 */
export function formatStatusLine(fields: Record<string, StatusField | undefined>): string {
  const parts: string[] = [];
  for (const [key, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    let text: string;
    if (typeof v === 'number') text = formatNumber(v);
    else if (typeof v === 'string') text = v;
    else if ('of' in v) text = `${formatNumber(v.of[0])}/${formatNumber(v.of[1])}`;
    else text = formatDuration(v.seconds);
    parts.push(`${key} ${text}`);
  }
  return parts.join('  ');
}

/** A number in at most ~4 significant digits: `231`, `45.1`, `0.0412`, `3.1e-5`, `1.23e+9`, `nan`. */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const abs = Math.abs(x);
  if (abs >= 1e7) return stripExponent(x.toExponential(2));
  if (Number.isInteger(x) || abs >= 1000) return String(Math.round(x));
  if (abs < 1e-3 && abs !== 0) return stripExponent(x.toExponential(2));
  return String(Number(x.toPrecision(4)));
}

/** `1.20e-5` -> `1.2e-5`. */
function stripExponent(s: string): string {
  return s.replace(/\.?0+e/, 'e');
}

/** A duration for humans: `0.42s`, `7.5s`, `42s`, `5m12s`, `2h05m`, `3d04h`; `?` when not finite. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const sign = seconds < 0 ? '-' : '';
  const s = Math.abs(seconds);
  if (s < 10) return `${sign}${Number(s.toPrecision(2))}s`;
  const whole = Math.round(s);
  if (whole < 60) return `${sign}${whole}s`;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (whole < 3600) return `${sign}${Math.floor(whole / 60)}m${pad(whole % 60)}s`;
  if (whole < 86400) return `${sign}${Math.floor(whole / 3600)}h${pad(Math.floor((whole % 3600) / 60))}m`;
  return `${sign}${Math.floor(whole / 86400)}d${pad(Math.floor((whole % 86400) / 3600))}h`;
}

/** Options of {@link StatsJsonlWriter}. */
export interface StatsJsonlWriterOptions {
  /** File name inside the run directory; default `stats.jsonl`. */
  fileName?: string;
}

/**
 * Appends one JSON object per tick to `runDir/stats.jsonl`. Each line goes out in synchronous
 * `write` calls on an append-mode descriptor, so a SIGKILL loses at most the line being written;
 * a torn last line left by such a kill is ended with a newline before new lines are appended.
 * `close()` fsyncs. Non-finite numbers are written as `null` (JSON has no NaN).
 */
export class StatsJsonlWriter {
  /** Path of the file written. */
  readonly path: string;
  private fd: number | null;

  /** Open (create or append to) `runDir/stats.jsonl`. */
  constructor(runDir: string, opts: StatsJsonlWriterOptions = {}) {
    mkdirSync(runDir, { recursive: true });
    this.path = path.join(runDir, opts.fileName ?? 'stats.jsonl');
    this.fd = openSync(this.path, 'a+');
    if (!endsWithNewline(this.fd)) writeFully(this.fd, Buffer.from('\n'));
  }

  /** Append `record` as one line, e.g. `{ step, kimg, timestamp, ...stats.tick() }`. */
  write(record: Record<string, unknown>): void {
    if (this.fd === null) throw new Error(`StatsJsonlWriter for ${this.path} is closed`);
    writeFully(this.fd, Buffer.from(JSON.stringify(record) + '\n', 'utf8'));
  }

  /** fsync the file; lines are already in the OS after each {@link write}. */
  flush(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  /** fsync and close; later writes throw. Safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Read a `stats.jsonl` file back, skipping blank lines and lines that do not parse (a line torn
 * by a kill). Returns the records in file order.
 */
export function parseStatsJsonl(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const x: unknown = JSON.parse(line);
      if (typeof x === 'object' && x !== null && !Array.isArray(x)) out.push(x as Record<string, unknown>);
    } catch {
      // A torn line: skip it.
    }
  }
  return out;
}

function endsWithNewline(fd: number): boolean {
  const size = fstatSync(fd).size;
  if (size === 0) return true;
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  return last[0] === 0x0a;
}

function writeFully(fd: number, buf: Buffer): void {
  let done = 0;
  while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done);
}
