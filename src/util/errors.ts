/** A mistake in how proggan was called (a flag, a config file, an input path): shown without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Turn any thrown value into a one-line message. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
