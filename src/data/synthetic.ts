/**
 * Procedural satellite-like tiles: the embedded default training data. Each tile is a small scene
 * (terrain, a meandering river, flood water in the low ground, agricultural parcels, roads, a
 * village) rendered either as RGB-like colour or as 1-channel SAR-like backscatter with speckle.
 * Scenes are laid out in tile coordinates [0, 1)^2, so their large-scale structure runs across the
 * whole tile (the four corners are correlated, which the corner-completion GAN needs) and the same
 * (seed, index) gives the same scene at any resolution. Tiles are generated lazily per index and are
 * a pure function of (seed, index, resolution, channels).
 */

import { hashSeed, Rng } from '../util/random.js';
import type { ImageDataset } from './pipeline.js';

/** Options of {@link syntheticTiles}. */
export interface SyntheticTilesOptions {
  /** Number of tiles in the dataset. Required. */
  count: number;
  /** Side of each square tile in pixels (at least 4). Required. */
  resolution: number;
  /** 1 for SAR-like intensity, 3 for RGB-like colour. Required. */
  channels: 1 | 3;
  /** Seed of the whole dataset; tile i is a function of (seed, i). Required. */
  seed: number;
  /** Keep generated tiles in memory (resolution^2 x channels x 4 bytes each); default false. */
  cache?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Noise

/** Integer lattice hash to an unsigned 32-bit integer. */
function hashInt(x: number, y: number, s: number): number {
  let h = Math.imul(x, 0x27d4eb2d) ^ Math.imul(y, 0x165667b1) ^ s;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Integer lattice hash to [0, 1). */
function hash2(x: number, y: number, s: number): number {
  return hashInt(x, y, s) / 4294967296;
}

/** Smooth value noise in [-1, 1] with unit lattice spacing (for textures). */
function valueNoise(x: number, y: number, s: number): number {
  const xi = Math.floor(x);
  const yi = Math.floor(y);
  const fx = x - xi;
  const fy = y - yi;
  const u = fx * fx * (3 - 2 * fx);
  const v = fy * fy * (3 - 2 * fy);
  const a = hash2(xi, yi, s);
  const b = hash2(xi + 1, yi, s);
  const c = hash2(xi, yi + 1, s);
  const d = hash2(xi + 1, yi + 1, s);
  return 2 * (a + (b - a) * u + (c - a) * v + (a - b - c + d) * u * v) - 1;
}

/** Sixteen unit gradient directions for {@link gradientNoise}. */
const GRAD_X = new Float64Array(16);
const GRAD_Y = new Float64Array(16);
for (let k = 0; k < 16; k++) {
  GRAD_X[k] = Math.cos((2 * Math.PI * (k + 0.5)) / 16);
  GRAD_Y[k] = Math.sin((2 * Math.PI * (k + 0.5)) / 16);
}

/**
 * Gradient (Perlin-style) noise in about [-1, 1] with unit lattice spacing. Used for terrain: unlike
 * value noise its slope does not vanish along lattice lines, so hill shading shows no grid.
 */
function gradientNoise(x: number, y: number, s: number): number {
  const xi = Math.floor(x);
  const yi = Math.floor(y);
  const fx = x - xi;
  const fy = y - yi;
  const h00 = hashInt(xi, yi, s) & 15;
  const h10 = hashInt(xi + 1, yi, s) & 15;
  const h01 = hashInt(xi, yi + 1, s) & 15;
  const h11 = hashInt(xi + 1, yi + 1, s) & 15;
  const n00 = (GRAD_X[h00] as number) * fx + (GRAD_Y[h00] as number) * fy;
  const n10 = (GRAD_X[h10] as number) * (fx - 1) + (GRAD_Y[h10] as number) * fy;
  const n01 = (GRAD_X[h01] as number) * fx + (GRAD_Y[h01] as number) * (fy - 1);
  const n11 = (GRAD_X[h11] as number) * (fx - 1) + (GRAD_Y[h11] as number) * (fy - 1);
  const u = fx * fx * fx * (fx * (fx * 6 - 15) + 10);
  const v = fy * fy * fy * (fy * (fy * 6 - 15) + 10);
  const a = n00 + (n10 - n00) * u;
  const b = n01 + (n11 - n01) * u;
  return 1.4142 * (a + (b - a) * v);
}

/**
 * Fractal sum of noise; each octave doubles the frequency and turns by about 37 degrees, hiding the
 * lattice directions. Roughly in [-1, 1]. Only the first `used` of `octaves` octaves are summed (band
 * limiting for small tiles); the normalisation counts all of them, so the coarse octaves keep their
 * amplitude at every resolution.
 */
function fbm(x: number, y: number, s: number, octaves: number, used: number, gradient: boolean): number {
  let sum = 0;
  let amp = 1;
  let norm = 0;
  for (let o = 0; o < octaves; o++) {
    if (o < used) {
      const so = (s + Math.imul(o, 0x9e3779b9)) | 0;
      sum += amp * (gradient ? gradientNoise(x, y, so) : valueNoise(x, y, so));
    }
    norm += amp;
    amp *= 0.5;
    const nx = 1.6 * x - 1.2 * y + 17.31;
    y = 1.2 * x + 1.6 * y - 9.17;
    x = nx;
  }
  return sum / norm;
}

/** How many of `octaves` octaves starting at `freq` cycles per tile have a period of at least 2.5 pixels. */
function bandLimit(freq: number, octaves: number, res: number): number {
  let used = 1;
  while (used < octaves && freq * 2 ** used * 2.5 <= res) used++;
  return used;
}

/**
 * Scratch buffers reused across tiles: rendering is synchronous, so one set per process suffices,
 * and reusing them keeps the garbage collector out of the per-tile cost.
 */
const scratch: Float32Array[] = [];

/** Scratch buffer number `slot` with room for `n` values (contents undefined). */
function scratchBuffer(slot: number, n: number): Float32Array {
  let buf = scratch[slot];
  if (!buf || buf.length < n) {
    buf = new Float32Array(n);
    scratch[slot] = buf;
  }
  return buf.length === n ? buf : buf.subarray(0, n);
}

/**
 * Bilinearly interpolate a g x g grid whose points lie `step` pixels apart onto res x res pixels, into
 * scratch buffer `slot` (or return the grid itself when step is 1).
 */
function upsample(grid: Float32Array, g: number, step: number, res: number, slot: number): Float32Array {
  if (step === 1) return grid;
  const out = scratchBuffer(slot, res * res);
  for (let j = 0; j < res; j++) {
    const gj = Math.min(Math.floor(j / step), g - 2);
    const ty = (j - gj * step) / step;
    for (let i = 0; i < res; i++) {
      const gi = Math.min(Math.floor(i / step), g - 2);
      const tx = (i - gi * step) / step;
      const a = grid[gj * g + gi] as number;
      const b = grid[gj * g + gi + 1] as number;
      const c = grid[(gj + 1) * g + gi] as number;
      const d = grid[(gj + 1) * g + gi + 1] as number;
      out[j * res + i] = a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
    }
  }
  return out;
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

function smoothstep(e0: number, e1: number, x: number): number {
  const t = clamp01((x - e0) / (e1 - e0));
  return t * t * (3 - 2 * t);
}

// ---------------------------------------------------------------------------------------------
// Scene description

/** A land-cover class with its colour (8-bit RGB) and its SAR backscatter (linear sigma0). */
interface Cover {
  rgb: [number, number, number];
  sar: number;
}

const FLOOD_SHALLOW: Cover = { rgb: [132, 116, 88], sar: 0.02 };
const FLOOD_DEEP: Cover = { rgb: [84, 86, 76], sar: 0.008 };
const FOREST: Cover = { rgb: [42, 66, 40], sar: 0.3 };
const SCRUB: Cover = { rgb: [104, 112, 70], sar: 0.13 };
const BUND: Cover = { rgb: [150, 144, 118], sar: 0.12 };
const YARD: Cover = { rgb: [138, 126, 104], sar: 0.09 };
/** River colours from clear to silt-laden. */
const RIVERS: Cover[] = [
  { rgb: [50, 70, 76], sar: 0.012 },
  { rgb: [98, 94, 76], sar: 0.012 },
];
/** Road surfaces: paved, dirt. */
const ROADS: Cover[] = [
  { rgb: [150, 146, 138], sar: 0.04 },
  { rgb: [166, 148, 118], sar: 0.05 },
];
/** Crops in the order of a paddy season, so a scene's contiguous slice looks like one season. */
const CROPS: Cover[] = [
  { rgb: [90, 102, 86], sar: 0.03 }, // flooded paddy
  { rgb: [92, 130, 62], sar: 0.1 }, // young rice
  { rgb: [106, 122, 70], sar: 0.15 }, // pasture
  { rgb: [116, 132, 72], sar: 0.26 }, // maturing crop
  { rgb: [146, 140, 92], sar: 0.2 }, // ripe crop
  { rgb: [142, 124, 96], sar: 0.05 }, // harvested stubble
  { rgb: [118, 98, 78], sar: 0.14 }, // ploughed soil
];
const ROOFS: Array<[number, number, number]> = [
  [178, 170, 158],
  [142, 88, 68],
  [192, 192, 196],
  [112, 106, 98],
];

/** A meandering curve across the tile: centre offset plus two sine harmonics along a direction. */
interface Curve {
  cos: number;
  sin: number;
  offset: number;
  a1: number;
  k1: number;
  p1: number;
  a2: number;
  k2: number;
  p2: number;
  /** Width in tile units. */
  width: number;
  cover: Cover;
}

interface Scene {
  terrainSeed: number;
  zoneSeed: number;
  vegSeed: number;
  detailSeed: number;
  parcelSeed: number;
  noiseSeed: number;
  terrainFreq: number;
  relief: number;
  trendX: number;
  trendY: number;
  rivers: Curve[];
  roads: Curve[];
  /** Fraction of the tile under flood water, besides the river. */
  floodFraction: number;
  /** Zone-noise threshold above which land is farmed. */
  fieldThreshold: number;
  fieldCos: number;
  fieldSin: number;
  rowHeight: number;
  colWidth: number;
  /** First crop of this scene's season and how many crops it has. */
  cropStart: number;
  cropSpan: number;
  village: { x: number; y: number; radius: number } | null;
  /** Global colour cast (season, sensor), multiplied into RGB. */
  tint: [number, number, number];
  /** Haze blended into RGB (0..1). */
  haze: number;
  /** SAR calibration / incidence-angle offset, dB. */
  sarOffsetDb: number;
}

function makeScene(seed: number): Scene {
  const rng = new Rng(seed);
  const u = (a: number, b: number): number => a + (b - a) * rng.next();
  const curve = (width: number, bend: number, cover: Cover): Curve => {
    const t = u(0, Math.PI);
    return {
      cos: Math.cos(t),
      sin: Math.sin(t),
      offset: u(-0.3, 0.3),
      a1: bend * u(0.3, 1),
      k1: u(0.5, 1.5),
      p1: u(0, 2 * Math.PI),
      a2: bend * u(0.05, 0.3),
      k2: u(2.5, 5),
      p2: u(0, 2 * Math.PI),
      width,
      cover,
    };
  };
  const riverCover = RIVERS[rng.int(RIVERS.length)] as Cover;
  const rivers: Curve[] = [];
  if (rng.next() < 0.75) {
    rivers.push(curve(u(0.02, 0.07), u(0.05, 0.14), riverCover));
    if (rng.next() < 0.3) rivers.push(curve(u(0.008, 0.018), u(0.03, 0.1), riverCover));
  }
  const roads: Curve[] = [];
  const roadCount = rng.int(3);
  for (let i = 0; i < roadCount; i++) {
    roads.push(curve(u(0.004, 0.009), rng.next() < 0.5 ? 0 : u(0.01, 0.04), ROADS[rng.int(ROADS.length)] as Cover));
  }
  const firstRoad = roads[0];
  const fieldAngle = firstRoad && rng.next() < 0.6 ? Math.atan2(firstRoad.sin, firstRoad.cos) : u(0, Math.PI);
  const fieldScale = u(0.6, 1.5);
  let village: Scene['village'] = null;
  if (firstRoad && rng.next() < 0.55) {
    // Put the village on the first road, near the tile.
    const t = u(-0.3, 0.3);
    const c = firstRoad.offset + firstRoad.a1 * Math.sin(2 * Math.PI * firstRoad.k1 * t + firstRoad.p1);
    village = { x: 0.5 + t * firstRoad.cos - c * firstRoad.sin, y: 0.5 + t * firstRoad.sin + c * firstRoad.cos, radius: u(0.08, 0.18) };
  }
  const season = rng.next();
  const cropSpan = 2 + rng.int(3);
  return {
    terrainSeed: rng.nextUint32() | 0,
    zoneSeed: rng.nextUint32() | 0,
    vegSeed: rng.nextUint32() | 0,
    detailSeed: rng.nextUint32() | 0,
    parcelSeed: rng.nextUint32() | 0,
    noiseSeed: rng.nextUint32() | 0,
    terrainFreq: u(1.5, 3.5),
    relief: rng.next() < 0.3 ? u(0.4, 0.8) : u(0.05, 0.3),
    trendX: u(-0.5, 0.5),
    trendY: u(-0.5, 0.5),
    rivers,
    roads,
    floodFraction: rng.next() < 0.4 ? 0 : u(0.05, 0.35),
    fieldThreshold: u(-0.25, 0.15),
    fieldCos: Math.cos(fieldAngle),
    fieldSin: Math.sin(fieldAngle),
    rowHeight: u(0.05, 0.1) * fieldScale,
    colWidth: u(0.05, 0.12) * fieldScale,
    cropStart: Math.floor(season * (CROPS.length - cropSpan + 1)),
    cropSpan,
    village,
    tint: [u(0.94, 1.06) * (1 + 0.05 * (season - 0.5)), u(0.95, 1.05), u(0.92, 1.05) * (1 - 0.05 * (season - 0.5))],
    haze: u(0, 0.1),
    sarOffsetDb: u(-3, 3),
  };
}

/**
 * Signed distance from (x, y) to a curve's centre line, in tile units (first-order, good for gentle
 * bends). Smooth, unlike its absolute value, so it can be interpolated from a coarse grid.
 */
function curveDistance(c: Curve, x: number, y: number): number {
  const px = x - 0.5;
  const py = y - 0.5;
  const along = px * c.cos + py * c.sin;
  const across = -px * c.sin + py * c.cos;
  const w1 = 2 * Math.PI * c.k1;
  const w2 = 2 * Math.PI * c.k2;
  const centre = c.offset + c.a1 * Math.sin(w1 * along + c.p1) + c.a2 * Math.sin(w2 * along + c.p2);
  const slope = c.a1 * w1 * Math.cos(w1 * along + c.p1) + c.a2 * w2 * Math.cos(w2 * along + c.p2);
  return (across - centre) / Math.sqrt(1 + slope * slope);
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Everything the per-pixel passes of one tile share; arrays are res x res, row-major. */
interface Tile {
  res: number;
  sc: Scene;
  /** Elevation (terrain minus river valleys). */
  elev: Float32Array;
  /** Vegetation noise: high values grow forest. */
  veg: Float32Array;
  /** Farming-zone noise: high values are farmed. */
  zone: Float32Array;
  /** River bank width factor (noisy banks), or null without rivers. */
  bank: Float32Array | null;
  /** Signed distance to each river / road centre line, tile units. */
  riverDist: Float32Array[];
  roadDist: Float32Array[];
  /** Terrain slope magnitude (per tile unit) and west-east slope. */
  slope: Float32Array;
  dhdx: Float32Array;
  /** Multiplicative relief shading of RGB. */
  shade: Float32Array;
  /** Fine canopy / surface texture noise in [-1, 1]. */
  canopy: Float32Array;
  /** Working colour (8-bit scale) and SAR backscatter (linear). */
  r: Float32Array;
  g: Float32Array;
  b: Float32Array;
  sar: Float32Array;
}

/** Fill a g x g grid (points `step` pixels apart) with fbm at `freq` cycles per tile. */
function fillNoise(grid: Float32Array, g: number, step: number, res: number, freq: number, seed: number, octaves: number, gradient: boolean): void {
  const used = bandLimit(freq, octaves, res);
  const f = freq / res;
  for (let gj = 0; gj < g; gj++) {
    const y = (gj * step + 0.5) * f;
    for (let gi = 0; gi < g; gi++) grid[gj * g + gi] = fbm((gi * step + 0.5) * f, y, seed, octaves, used, gradient);
  }
}

/** Fill a g x g grid with the signed distance to a curve. */
function fillCurve(grid: Float32Array, g: number, step: number, res: number, c: Curve): void {
  for (let gj = 0; gj < g; gj++) {
    const y = (gj * step + 0.5) / res;
    for (let gi = 0; gi < g; gi++) grid[gj * g + gi] = curveDistance(c, (gi * step + 0.5) / res, y);
  }
}

/** Stage 1: the smooth fields, evaluated on a grid at most 128 points wide and interpolated. */
function buildTile(sc: Scene, res: number): Tile {
  const step = Math.max(1, Math.floor(res / 128));
  const g = step === 1 ? res : Math.ceil((res - 1) / step) + 1;
  const gn = g * g;
  const n = res * res;
  // Scratch slots: grids 0..7, fields 8..15 (at most 2 rivers and 2 roads), per-pixel work 16..23.
  const gElev = scratchBuffer(0, gn);
  const gVeg = scratchBuffer(1, gn);
  const gZone = scratchBuffer(2, gn);
  const gBank = scratchBuffer(3, gn);
  const gRiver = sc.rivers.map((_, q) => scratchBuffer(4 + q, gn));
  const gRoad = sc.roads.map((_, q) => scratchBuffer(6 + q, gn));
  fillNoise(gElev, g, step, res, sc.terrainFreq, sc.terrainSeed, 5, true);
  fillNoise(gVeg, g, step, res, 5, sc.vegSeed, 3, false);
  fillNoise(gZone, g, step, res, 1.8, sc.zoneSeed, 2, false);
  sc.rivers.forEach((c, q) => fillCurve(gRiver[q] as Float32Array, g, step, res, c));
  sc.roads.forEach((c, q) => fillCurve(gRoad[q] as Float32Array, g, step, res, c));
  if (sc.rivers.length > 0) {
    fillNoise(gBank, g, step, res, 23, sc.detailSeed, 1, false);
    for (let k = 0; k < gn; k++) gBank[k] = 1 + 0.3 * (gBank[k] as number);
  }
  // Elevation: scaled relief plus a regional tilt; rivers cut valleys that floods fill first.
  for (let gj = 0; gj < g; gj++) {
    const y = (gj * step + 0.5) / res;
    for (let gi = 0; gi < g; gi++) {
      const k = gj * g + gi;
      let h = sc.relief * (gElev[k] as number) + sc.trendX * ((gi * step + 0.5) / res - 0.5) + sc.trendY * (y - 0.5);
      for (const d of gRiver) h -= 0.3 * Math.exp(-((d[k] as number) ** 2) / 0.02);
      gElev[k] = h;
    }
  }
  return {
    res,
    sc,
    elev: upsample(gElev, g, step, res, 8),
    veg: upsample(gVeg, g, step, res, 9),
    zone: upsample(gZone, g, step, res, 10),
    bank: sc.rivers.length > 0 ? upsample(gBank, g, step, res, 11) : null,
    riverDist: gRiver.map((a, q) => upsample(a, g, step, res, 12 + q)),
    roadDist: gRoad.map((a, q) => upsample(a, g, step, res, 14 + q)),
    slope: scratchBuffer(16, n),
    dhdx: scratchBuffer(17, n),
    shade: scratchBuffer(18, n),
    canopy: scratchBuffer(19, n),
    r: scratchBuffer(20, n),
    g: scratchBuffer(21, n),
    b: scratchBuffer(22, n),
    sar: scratchBuffer(23, n),
  };
}

/** Stage 2: slopes and relief shading (light from the north-west), and the fine texture noise. */
function terrainPass(t: Tile): void {
  const { res, elev } = t;
  const s = t.sc.detailSeed ^ 0x5bd1e995;
  const f = 90 / res;
  for (let j = 0; j < res; j++) {
    const jm = j > 0 ? j - 1 : j;
    const jp = j < res - 1 ? j + 1 : j;
    for (let i = 0; i < res; i++) {
      const k = j * res + i;
      const im = i > 0 ? i - 1 : i;
      const ip = i < res - 1 ? i + 1 : i;
      const dx = (((elev[j * res + ip] as number) - (elev[j * res + im] as number)) * res) / (ip - im);
      const dy = (((elev[jp * res + i] as number) - (elev[jm * res + i] as number)) * res) / (jp - jm);
      t.dhdx[k] = dx;
      t.slope[k] = Math.sqrt(dx * dx + dy * dy);
      t.shade[k] = 1 - 0.1 * (dx + dy);
      t.canopy[k] = valueNoise((i + 0.5) * f, (j + 0.5) * f, s);
    }
  }
}

/** Stage 3: natural land: forest on higher, steeper ground, scrub (dry to green) elsewhere. */
function naturePass(t: Tile): void {
  const n = t.res * t.res;
  for (let k = 0; k < n; k++) {
    const forest = smoothstep(-0.02, 0.1, (t.veg[k] as number) + 0.5 * (t.elev[k] as number) + 0.1 * (t.slope[k] as number));
    const canopy = t.canopy[k] as number;
    const tex = 1 + (0.08 + 0.14 * forest) * canopy;
    const lush = clamp01(0.5 + 2 * (t.zone[k] as number));
    t.r[k] = (SCRUB.rgb[0] - 14 * lush + (FOREST.rgb[0] - SCRUB.rgb[0] + 14 * lush) * forest) * tex;
    t.g[k] = (SCRUB.rgb[1] + 4 * lush + (FOREST.rgb[1] - SCRUB.rgb[1] - 4 * lush) * forest) * tex;
    t.b[k] = (SCRUB.rgb[2] - 8 * lush + (FOREST.rgb[2] - SCRUB.rgb[2] + 8 * lush) * forest) * tex;
    t.sar[k] = (SCRUB.sar + (FOREST.sar - SCRUB.sar) * forest) * (1 + 0.5 * canopy);
  }
}

/** Stage 4: farmland: parcels on a rotated strip grid in the flat, low zones, with furrows and bunds. */
function farmPass(t: Tile): void {
  const { res, sc } = t;
  const px = 1 / res;
  const furrowPeriod = 0.012;
  const furrowAmp = 0.07 * clamp01((furrowPeriod * res - 2) / 2);
  const bundHalf = 0.0025;
  const ps = sc.parcelSeed;
  for (let j = 0; j < res; j++) {
    const y = (j + 0.5) * px - 0.5;
    for (let i = 0; i < res; i++) {
      const k = j * res + i;
      const farm = smoothstep(sc.fieldThreshold, sc.fieldThreshold + 0.03, (t.zone[k] as number) - 0.4 * (t.elev[k] as number) - 0.25 * (t.slope[k] as number));
      if (farm <= 0) continue;
      const x = (i + 0.5) * px - 0.5;
      const p = x * sc.fieldCos + y * sc.fieldSin;
      const q = -x * sc.fieldSin + y * sc.fieldCos;
      const row = Math.floor(q / sc.rowHeight);
      const fq = q / sc.rowHeight - row;
      const colW = sc.colWidth * (0.5 + hash2(row, 7, ps));
      const shifted = p + hash2(row, 3, ps) * colW;
      const col = Math.floor(shifted / colW);
      const fp = shifted / colW - col;
      const crop = CROPS[sc.cropStart + Math.floor(hash2(row, col, ps ^ 0x68e31da4) * sc.cropSpan)] as Cover;
      // Furrows run along or across the parcel; each parcel has its own brightness.
      const along = hash2(row, col, ps ^ 0x2545f491) < 0.5 ? fp * colW : fq * sc.rowHeight;
      const furrow = 1 + furrowAmp * Math.sin((2 * Math.PI * along) / furrowPeriod);
      const m = (0.9 + 0.2 * hash2(col, row, ps ^ 0x1b873593)) * furrow * (1 + 0.04 * (t.canopy[k] as number));
      // Bunds between parcels: thin light lines.
      const edge = Math.min(Math.min(fp, 1 - fp) * colW, Math.min(fq, 1 - fq) * sc.rowHeight);
      const bund = 0.6 * clamp01((bundHalf - edge) * res + 0.5);
      const fr = crop.rgb[0] * m;
      const fg = crop.rgb[1] * m;
      const fb = crop.rgb[2] * m;
      const fs = crop.sar * m * m;
      t.r[k] = lerp(t.r[k] as number, fr + (BUND.rgb[0] - fr) * bund, farm);
      t.g[k] = lerp(t.g[k] as number, fg + (BUND.rgb[1] - fg) * bund, farm);
      t.b[k] = lerp(t.b[k] as number, fb + (BUND.rgb[2] - fb) * bund, farm);
      t.sar[k] = lerp(t.sar[k] as number, fs + (BUND.sar - fs) * bund, farm);
    }
  }
}

/** Stage 5: a village: houses on a jittered grid around its centre, denser near it, yards between. */
function villagePass(t: Tile): void {
  const { res, sc } = t;
  const v = sc.village;
  if (!v) return;
  const cell = 0.03;
  const reach = 1.2 * v.radius;
  const ps = sc.parcelSeed;
  const j0 = Math.max(0, Math.floor((v.y - reach) * res));
  const j1 = Math.min(res - 1, Math.ceil((v.y + reach) * res));
  const i0 = Math.max(0, Math.floor((v.x - reach) * res));
  const i1 = Math.min(res - 1, Math.ceil((v.x + reach) * res));
  for (let j = j0; j <= j1; j++) {
    const y = (j + 0.5) / res;
    for (let i = i0; i <= i1; i++) {
      const x = (i + 0.5) / res;
      const dv = Math.hypot(x - v.x, y - v.y) / v.radius;
      if (dv >= 1.2) continue;
      const cx = Math.floor(x / cell);
      const cy = Math.floor(y / cell);
      if (hash2(cx, cy, ps ^ 0x3c6ef372) >= 0.9 * (1 - 0.6 * dv * dv)) continue;
      const k = j * res + i;
      const fx = x / cell - cx;
      const fy = y / cell - cy;
      const x0 = 0.05 + 0.25 * hash2(cx, cy, ps ^ 11);
      const y0 = 0.05 + 0.25 * hash2(cx, cy, ps ^ 12);
      const x1 = x0 + 0.4 + 0.25 * hash2(cx, cy, ps ^ 13);
      const y1 = y0 + 0.4 + 0.25 * hash2(cx, cy, ps ^ 14);
      if (fx > x0 && fx < x1 && fy > y0 && fy < y1) {
        const roof = ROOFS[Math.floor(hash2(cx, cy, ps ^ 15) * ROOFS.length)] as [number, number, number];
        t.r[k] = roof[0];
        t.g[k] = roof[1];
        t.b[k] = roof[2];
        t.sar[k] = 1 + 2 * hash2(cx, cy, ps ^ 16);
      } else {
        t.r[k] = 0.5 * (t.r[k] as number) + 0.5 * YARD.rgb[0];
        t.g[k] = 0.5 * (t.g[k] as number) + 0.5 * YARD.rgb[1];
        t.b[k] = 0.5 * (t.b[k] as number) + 0.5 * YARD.rgb[2];
        t.sar[k] = 0.5 * (t.sar[k] as number) + 0.5 * YARD.sar;
      }
    }
  }
}

/** Flood level: the elevation quantile of the scene's flooded fraction (-Infinity: no flood). */
function floodLevel(t: Tile): number {
  if (t.sc.floodFraction <= 0) return -Infinity;
  const n = t.res * t.res;
  const stride = Math.max(1, Math.floor(n / 2048));
  const sample = new Float32Array(Math.ceil(n / stride));
  for (let k = 0, m = 0; k < n; k += stride, m++) sample[m] = t.elev[k] as number;
  sample.sort();
  return sample[Math.min(sample.length - 1, Math.floor(t.sc.floodFraction * sample.length))] as number;
}

/**
 * Stage 6: relief shading, roads, flood water, rivers, then the sensor: colour cast, haze and noise
 * (RGB) or 4-look multiplicative speckle in dB (SAR). Writes the output tile.
 */
function finishPass(t: Tile, channels: 1 | 3, out: Float32Array): void {
  const { res, sc } = t;
  const level = floodLevel(t);
  const keep = 1 - sc.haze;
  const hz = sc.haze * 215;
  const ns = sc.noiseSeed;
  const river = sc.rivers[0]?.cover ?? FLOOD_DEEP;
  for (let j = 0; j < res; j++) {
    for (let i = 0; i < res; i++) {
      const k = j * res + i;
      const shade = t.shade[k] as number;
      let r = (t.r[k] as number) * shade;
      let g = (t.g[k] as number) * shade;
      let b = (t.b[k] as number) * shade;
      // SAR: slopes facing the sensor (in the west) look brighter.
      let sar = (t.sar[k] as number) * Math.exp(-0.3 * (t.dhdx[k] as number));
      // Roads (anti-aliased coverage from the distance in pixels).
      let road = 0;
      let roadCover = FLOOD_DEEP;
      for (let q = 0; q < t.roadDist.length; q++) {
        const c = sc.roads[q] as Curve;
        const cov = clamp01((c.width * 0.5 - Math.abs((t.roadDist[q] as Float32Array)[k] as number)) * res + 0.5);
        if (cov > road) {
          road = cov;
          roadCover = c.cover;
        }
      }
      if (road > 0) {
        r = lerp(r, roadCover.rgb[0], road);
        g = lerp(g, roadCover.rgb[1], road);
        b = lerp(b, roadCover.rgb[2], road);
        sar = lerp(sar, roadCover.sar, road);
      }
      // Flood water in the low ground, muddy where shallow; roads on embankments often stay dry.
      const canopy = t.canopy[k] as number;
      const hw = (t.elev[k] as number) + 0.06 * road + 0.006 * canopy;
      if (hw < level) {
        const depth = smoothstep(0, 0.15, level - hw);
        const edge = clamp01((level - hw) / 0.002);
        const ripple = 1 + 0.03 * canopy;
        r = lerp(r, lerp(FLOOD_SHALLOW.rgb[0], FLOOD_DEEP.rgb[0], depth) * ripple, edge);
        g = lerp(g, lerp(FLOOD_SHALLOW.rgb[1], FLOOD_DEEP.rgb[1], depth) * ripple, edge);
        b = lerp(b, lerp(FLOOD_SHALLOW.rgb[2], FLOOD_DEEP.rgb[2], depth) * ripple, edge);
        sar = lerp(sar, lerp(FLOOD_SHALLOW.sar, FLOOD_DEEP.sar, depth), edge);
      }
      // Rivers, with noisy banks.
      if (t.bank) {
        const bank = t.bank[k] as number;
        let water = 0;
        for (let q = 0; q < t.riverDist.length; q++) {
          const half = 0.5 * (sc.rivers[q] as Curve).width * bank;
          water = Math.max(water, clamp01((half - Math.abs((t.riverDist[q] as Float32Array)[k] as number)) * res + 0.5));
        }
        if (water > 0) {
          r = lerp(r, river.rgb[0], water);
          g = lerp(g, river.rgb[1], water);
          b = lerp(b, river.rgb[2], water);
          sar = lerp(sar, river.sar, water);
        }
      }
      if (channels === 3) {
        const nz = 3 * (hash2(i, j, ns) + hash2(i, j, ns ^ 0x55555555) - 1);
        const o = k * 3;
        out[o] = toUnit(r * sc.tint[0] * keep + hz + nz);
        out[o + 1] = toUnit(g * sc.tint[1] * keep + hz * 1.02 + nz);
        out[o + 2] = toUnit(b * sc.tint[2] * keep + hz * 1.08 + nz);
      } else {
        // A sum of four unit exponentials is -log of a product of four uniforms.
        const u4 = (1 - hash2(i, j, ns)) * (1 - hash2(i, j, ns ^ 0x61c88647)) * (1 - hash2(i, j, ns ^ 0x3c6ef372)) * (1 - hash2(i, j, ns ^ 0x7f4a7c15));
        const db = 10 * Math.log10(Math.max(1e-6, -0.25 * sar * Math.log(u4)));
        const v = (db + sc.sarOffsetDb + 25) / 30;
        out[k] = v < 0 ? -1 : v > 1 ? 1 : 2 * v - 1;
      }
    }
  }
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

/**
 * Render the scene of `tileSeed` as a res x res HWC float32 tile in [-1, 1]: 3 channels give
 * RGB-like colour, 1 channel SAR-like backscatter in dB with 4-look speckle. A pure function of its
 * arguments.
 */
export function renderTile(tileSeed: number, resolution: number, channels: 1 | 3): Float32Array {
  const t = buildTile(makeScene(tileSeed), resolution);
  terrainPass(t);
  naturePass(t);
  farmPass(t);
  villagePass(t);
  const out = new Float32Array(resolution * resolution * channels);
  finishPass(t, channels, out);
  return out;
}

/** Map an 8-bit-scale value to [-1, 1], clipping. */
function toUnit(v: number): number {
  const t = v / 127.5 - 1;
  return t < -1 ? -1 : t > 1 ? 1 : t;
}

// ---------------------------------------------------------------------------------------------
// Dataset

/** A lazily generated dataset of synthetic tiles; see {@link syntheticTiles}. */
export class SyntheticTileDataset implements ImageDataset {
  /** Number of tiles. */
  readonly size: number;
  /** Tile side in pixels. */
  readonly resolution: number;
  /** Channels per pixel. */
  readonly channels: 1 | 3;
  /** Dataset seed. */
  readonly seed: number;
  private readonly cache: Map<number, Float32Array> | null;

  constructor(opts: SyntheticTilesOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 1) throw new RangeError(`syntheticTiles: count must be a positive integer, got ${opts.count}`);
    if (!Number.isInteger(opts.resolution) || opts.resolution < 4) throw new RangeError(`syntheticTiles: resolution must be an integer >= 4, got ${opts.resolution}`);
    if (opts.channels !== 1 && opts.channels !== 3) throw new RangeError(`syntheticTiles: channels must be 1 or 3, got ${String(opts.channels)}`);
    if (!Number.isFinite(opts.seed)) throw new RangeError(`syntheticTiles: seed must be a finite number, got ${opts.seed}`);
    this.size = opts.count;
    this.resolution = opts.resolution;
    this.channels = opts.channels;
    this.seed = opts.seed;
    this.cache = opts.cache ? new Map() : null;
  }

  /** Tile i as HWC float32 in [-1, 1], generated synchronously. */
  generate(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new RangeError(`synthetic tiles: index ${i} out of range [0, ${this.size})`);
    const hit = this.cache?.get(i);
    if (hit) return hit.slice();
    const tile = renderTile(hashSeed('synthetic-tile', this.seed, i), this.resolution, this.channels);
    this.cache?.set(i, tile.slice());
    return tile;
  }

  /** Tile i as HWC float32 in [-1, 1]. */
  async get(i: number): Promise<Float32Array> {
    return this.generate(i);
  }

  /** A name such as `synthetic(seed=1)#42`. */
  name(i: number): string {
    return `synthetic(seed=${this.seed})#${i}`;
  }
}

/**
 * Procedural satellite-like tiles, deterministic per (seed, index) and generated lazily: terrain,
 * rivers, flood water, agricultural parcels, roads and villages, as RGB-like colour (3 channels) or
 * SAR-like intensity with speckle (1 channel).
 */
export function syntheticTiles(opts: SyntheticTilesOptions): SyntheticTileDataset {
  return new SyntheticTileDataset(opts);
}
