// Without the addon, the native backend reports why and how to fix it, and never half-registers.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

tf.env().set('PROD', true);

type NativeModule = typeof import('../src/backend/native.js');

async function freshModule(addonPath: string): Promise<NativeModule> {
  vi.stubEnv('PROGGAN_NATIVE_ADDON', addonPath);
  vi.resetModules();
  return import('../src/backend/native.js');
}

describe('native backend when the addon is missing or broken', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('reports a missing addon and throws NativeBackendUnavailableError with the fix', async () => {
    const m = await freshModule('/nonexistent/proggan_native.node');
    const s = m.nativeBackendStatus();
    expect(s.available).toBe(false);
    expect(s.reason).toMatch(/not built.*nonexistent/);
    const err = await m.registerNativeBackend().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(m.NativeBackendUnavailableError);
    expect(String(err)).toMatch(/apt-get install libdnnl-dev g\+\+ make python3/);
    expect(String(err)).toMatch(/npm rebuild proggan/);
    expect(() => m.setNativeThreads(2)).toThrow(m.NativeBackendUnavailableError);
    expect(tf.findBackendFactory('native-missing')).toBeNull();
  });

  it('reports an addon file that fails to load, or is not the proggan addon', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'proggan-native-'));
    const bogus = join(dir, 'bogus.node');
    writeFileSync(bogus, 'not a shared object');
    try {
      const m = await freshModule(bogus);
      expect(m.nativeBackendStatus().reason).toMatch(/loading .*bogus\.node failed/);
      await expect(m.registerNativeBackend()).rejects.toBeInstanceOf(m.NativeBackendUnavailableError);
      const other = await freshModule(new URL('../package.json', import.meta.url).pathname);
      expect(other.nativeBackendStatus().reason).toMatch(/not a compatible proggan_native addon/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
