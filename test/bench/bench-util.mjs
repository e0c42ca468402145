// Shared helpers for the benchmarks in test/bench/.
import { readFileSync } from 'node:fs';

/** Median of a non-empty list of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Parses `--name value` / `--flag` arguments over defaults (numbers and booleans coerced). */
export function parseFlags(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    if (!(key in defaults)) throw new Error(`unknown flag ${a}`);
    if (typeof defaults[key] === 'boolean') out[key] = true;
    else {
      const v = argv[++i];
      out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    }
  }
  return out;
}

/**
 * Peak fp32 GFLOP/s of `threads` cores: cores x clock x 32 (two 8-wide AVX2 FMA units; AVX-512
 * doubles the width, reported alongside). The clock is the nominal one from /proc/cpuinfo.
 */
export function machinePeak(threads) {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? 'unknown CPU';
  let ghz = Number(/@\s*([\d.]+)GHz/.exec(model)?.[1] ?? NaN);
  if (!Number.isFinite(ghz)) ghz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? NaN) / 1000;
  const avx512 = /\bavx512f\b/.test(info);
  const gflops = threads * ghz * 32;
  return {
    gflops,
    ghz,
    avx512,
    describe: `${threads} x ${ghz.toFixed(2)} GHz x 32 flop/cycle (AVX2 FMA)${avx512 ? `; AVX-512 peak ${(2 * gflops).toFixed(0)}` : ''}; ${model.trim()}`,
  };
}
