/**
 * Finding and loading proggan's native addons without tfjs: the oneDNN backend
 * (build/Release/proggan_native.node, or the file named by PROGGAN_NATIVE_ADDON) and the shared-memory
 * transport (build/Release/proggan_shm.node, or PROGGAN_SHM_ADDON), two independent builds; each
 * loader checks for the functions it needs.
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

/** Which addon to load: its file under build/Release and the variable that overrides its path. */
export interface AddonTarget {
  /** File name under `build/Release/`. */
  file: string;
  /** Environment variable naming another path for it. */
  envVar: string;
  /** What it is, for messages ("native addon", "shared-memory transport addon"). */
  what: string;
}

/** The oneDNN backend's addon. */
export const NATIVE_ADDON: AddonTarget = { file: 'proggan_native.node', envVar: 'PROGGAN_NATIVE_ADDON', what: 'native addon' };
/** The shared-memory transport's addon (needs no oneDNN). */
export const SHM_ADDON: AddonTarget = { file: 'proggan_shm.node', envVar: 'PROGGAN_SHM_ADDON', what: 'shared-memory transport addon' };

/**
 * Load an addon (Node caches the module itself) and check that it exports `fns`; `incompatible`
 * is the error text when it does not.
 */
export function loadNativeAddon<T>(fns: readonly string[], incompatible: (path: string) => string, target: AddonTarget = NATIVE_ADDON): AddonLoad<T> {
  const override = process.env[target.envVar];
  const root = packageRoot();
  const path = override !== undefined && override.length > 0 ? override : root === undefined ? undefined : join(root, 'build', 'Release', target.file);
  if (path === undefined || !existsSync(path)) return { error: `the ${target.what} is not built (${path ?? 'package root not found'} does not exist)` };
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    if (typeof mod !== 'object' || mod === null || fns.some((f) => typeof (mod as Record<string, unknown>)[f] !== 'function')) return { error: incompatible(path) };
    return { addon: mod as T };
  } catch (err) {
    return { error: `loading ${path} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}
