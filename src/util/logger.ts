import { pino } from 'pino';

/** One logging method: a record's fields and a message, or a message alone. */
export interface LogFn {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

/**
 * The logger proggan writes to: JSON records at four levels. A pino logger satisfies it, and so
 * does any object with these methods. Declared here (not re-exported from pino) so the public
 * types name no transitive dependency.
 */
export interface Logger {
  /** Detail for debugging. */
  debug: LogFn;
  /** Progress and results. */
  info: LogFn;
  /** Something the user should look at. */
  warn: LogFn;
  /** A failure. */
  error: LogFn;
}

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
