import { pino, type Logger } from 'pino';

export type { Logger };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level written; default `info` (or `PROGGAN_LOG_LEVEL`). */
  level?: string;
  /** File descriptor or path to write JSON lines to; default 1 (stdout). */
  destination?: number | string;
}

/**
 * JSON logger written synchronously from the main thread, so log lines never interleave with the
 * progress bar (which goes to stderr). Pipe through `pino-pretty` for humans.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env['PROGGAN_LOG_LEVEL'] ?? 'info';
  const dest = pino.destination({ dest: opts.destination ?? 1, sync: true });
  return pino({ level, base: { pid: process.pid } }, dest);
}

/** A logger that drops everything; the default for library calls that were given none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
