/**
 * Finding and loading proggan's native addon (build/Release/proggan_native.node, or the file named by
 * PROGGAN_NATIVE_ADDON), without tfjs: the native backend and the shared-memory transport both load
 * it, each checking for the functions it needs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon module, or why it cannot be used. */
export type AddonLoad<T> = { addon: T } | { error: string };

/** Walks up from this module to the directory whose package.json is proggan's. */
export function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        const name: unknown = (JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        if (name === 'proggan') return dir;
      } catch {
        // not a readable package.json: keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * Load the addon (Node caches the module itself) and check that it exports `fns`; `incompatible`
 * is the error text when it does not.
 */
export function loadNativeAddon<T>(fns: readonly string[], incompatible: (path: string) => string): AddonLoad<T> {
  const override = process.env['PROGGAN_NATIVE_ADDON'];
  const root = packageRoot();
  const path = override !== undefined && override.length > 0 ? override : root === undefined ? undefined : join(root, 'build', 'Release', 'proggan_native.node');
  if (path === undefined || !existsSync(path)) return { error: `the native addon is not built (${path ?? 'package root not found'} does not exist)` };
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    if (typeof mod !== 'object' || mod === null || fns.some((f) => typeof (mod as Record<string, unknown>)[f] !== 'function')) return { error: incompatible(path) };
    return { addon: mod as T };
  } catch (err) {
    return { error: `loading ${path} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}
