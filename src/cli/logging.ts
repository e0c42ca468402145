/**
 * Where the CLI's log goes: a run's JSON lines always go to its run directory's log.jsonl; besides,
 * JSON lines on stdout when stdout is a pipe or file (machines read it), or short human lines on
 * stderr above the progress bar when stdout is a terminal (people read those).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type DestinationStream } from 'pino';
import type { Logger } from '../util/logger.js';

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** A stream that prints each record's message (and level when above info) to stderr, clearing the bar line. */
function humanStream(): DestinationStream {
  return {
    write(line: string) {
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string };
        const level = rec.level ?? 30;
        const prefix = level >= 40 ? `${(LEVEL_NAMES[level] ?? 'warn').toUpperCase()} ` : '';
        process.stderr.write(`\r\x1b[2K${prefix}${rec.msg ?? ''}\n`);
      } catch {
        process.stderr.write(line);
      }
    },
  };
}

/** Create the CLI logger for a run directory (or none, e.g. for --dry-run). */
export function createCliLogger(opts: { level: string; runDir?: string; human?: boolean }): Logger {
  const human = opts.human ?? Boolean(process.stdout.isTTY);
  const stdout = pino.destination({ dest: 1, sync: true });
  if (opts.runDir === undefined) {
    return human
      ? pino({ level: opts.level, base: { pid: process.pid } }, pino.multistream([{ level: opts.level as pino.Level, stream: humanStream() }]))
      : pino({ level: opts.level, base: { pid: process.pid } }, stdout);
  }
  mkdirSync(opts.runDir, { recursive: true });
  const file = pino.destination({ dest: join(opts.runDir, 'log.jsonl'), sync: true, mkdir: true });
  return pino(
    { level: opts.level, base: { pid: process.pid } },
    pino.multistream([
      { level: opts.level as pino.Level, stream: file },
      human ? { level: 'info', stream: humanStream() } : { level: opts.level as pino.Level, stream: stdout },
    ]),
  );
}
