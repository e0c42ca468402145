/**
 * Seeded, serialisable pseudo-random numbers (sfc32). Every source of randomness in proggan that
 * must survive a checkpoint goes through an {@link Rng}, so a resumed run draws the same numbers as an
 * uninterrupted one.
 */

/** The four 32-bit words of an sfc32 generator's state; plain JSON. */
export type RngState = [number, number, number, number];

/** Hash a string or number into a 32-bit seed (xmur3-style mixing). */
export function hashSeed(...parts: Array<string | number>): number {
  const s = parts.map(String).join('\u0001');
  let h = 1779033703 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  h = Math.imul(h ^ (h >>> 16), 2246822507);
  h = Math.imul(h ^ (h >>> 13), 3266489909);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A small fast generator with explicit state: `getState()` / `setState()` round-trip exactly. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | null = null;

  /** Seed from any number or string; equal seeds give equal streams. */
  constructor(seed: number | string = 0) {
    const h = hashSeed('proggan', seed);
    this.a = h;
    this.b = hashSeed(h, 1);
    this.c = hashSeed(h, 2);
    this.d = 1;
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal sample (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fill a new Float32Array with standard normal samples. */
  normalArray(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }

  /** Shuffle an array in place (Fisher-Yates) and return it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i] as T;
      arr[i] = arr[j] as T;
      arr[j] = tmp;
    }
    return arr;
  }

  /** A 31-bit integer suitable as a tfjs op seed. */
  seed(): number {
    return this.nextUint32() >>> 1;
  }

  /** Exact state for checkpoints (the cached normal is dropped, so call between whole draws). */
  getState(): RngState {
    this.spareNormal = null;
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  /** Restore a state from {@link getState}. */
  setState(s: RngState): void {
    [this.a, this.b, this.c, this.d] = s.map((x) => x | 0) as RngState;
    this.spareNormal = null;
  }
}
