/**
 * Physics validation of calorimeter showers (replaces the reference's ROOT scripts), pure TypeScript
 * on typed arrays. Showers are row-major [n, X, Y, Z] cell energies in GeV (preprocessing undone),
 * Z the depth; the entry angle tilts showers in the Y-Z plane.
 */

/** Per-event quantities of one shower. */
export interface ShowerFeatures {
  /** Total deposited energy (ECAL sum), GeV. */
  ecal: number;
  /** Energy per X, Y, Z slice (GeV). */
  profileX: Float64Array;
  profileY: Float64Array;
  profileZ: Float64Array;
  /** Moments 1..3 along x, y, z: [mean, central 2nd, central 3rd] in cell units (0 for an empty shower). */
  momentsX: [number, number, number];
  momentsY: [number, number, number];
  momentsZ: [number, number, number];
  /** Cells above the hit threshold. */
  hits: number;
  /** Measured angle, rad (see {@link measuredAngleOf}). */
  angle: number;
}

/** Default hit threshold, GeV. */
export const HIT_THRESHOLD = 3e-4;

function moments(profile: Float64Array, total: number): [number, number, number] {
  if (total <= 0) return [0, 0, 0];
  let m1 = 0;
  profile.forEach((v, i) => { m1 += i * v; });
  m1 /= total;
  let m2 = 0;
  let m3 = 0;
  profile.forEach((v, i) => { const d = i - m1; m2 += d * d * v; m3 += d * d * d * v; });
  return [m1, m2 / total, m3 / total];
}

/**
 * Measured entry angle of one shower, rad: the energy-weighted least-squares slope `s` of the
 * per-layer Y barycentre against the layer index, as `pi/2 - atan(s)` (90 deg along Z; empty layers
 * weigh nothing; pi/2 for an empty shower). The same definition as the discriminator's angle output.
 */
export function measuredAngleOf(profileZ: Float64Array, yMomentZ: Float64Array): number {
  let w = 0;
  let zm = 0;
  let ym = 0;
  profileZ.forEach((v, z) => { w += v; zm += v * z; ym += yMomentZ[z] ?? 0; });
  if (w <= 0) return Math.PI / 2;
  zm /= w;
  ym /= w;
  let cov = 0;
  let varZ = 0;
  profileZ.forEach((v, z) => { const dz = z - zm; cov += dz * ((yMomentZ[z] ?? 0) - v * ym); varZ += v * dz * dz; });
  return Math.PI / 2 - Math.atan(varZ > 0 ? cov / varZ : 0);
}

/** Features of event `i` of showers [n, X, Y, Z]. */
export function showerFeatures(cells: Float32Array, shape: [number, number, number], i: number, hitThreshold = HIT_THRESHOLD): ShowerFeatures {
  const [nx, ny, nz] = shape;
  const px = new Float64Array(nx);
  const py = new Float64Array(ny);
  const pz = new Float64Array(nz);
  const yMomentZ = new Float64Array(nz);
  let total = 0;
  let hits = 0;
  const base = i * nx * ny * nz;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      const row = base + (x * ny + y) * nz;
      for (let z = 0; z < nz; z++) {
        const v = cells[row + z] ?? 0;
        if (v === 0) continue;
        px[x] = (px[x] ?? 0) + v;
        py[y] = (py[y] ?? 0) + v;
        pz[z] = (pz[z] ?? 0) + v;
        yMomentZ[z] = (yMomentZ[z] ?? 0) + y * v;
        total += v;
        if (v > hitThreshold) hits++;
      }
    }
  }
  return {
    ecal: total,
    profileX: px,
    profileY: py,
    profileZ: pz,
    momentsX: moments(px, total),
    momentsY: moments(py, total),
    momentsZ: moments(pz, total),
    hits,
    angle: measuredAngleOf(pz, yMomentZ),
  };
}

/** A bin of primary energy (GeV) and, optionally, entry angle (rad). */
export interface PhysicsBin {
  /** Label, e.g. `150GeV` or `150GeV/90deg`. */
  label: string;
  energy: [number, number];
  angle?: [number, number];
}

/** The reference's bins: 110/150/190 +- 5 GeV, and with angles 62/90/118 +- 3 deg when `withAngles`. */
export function referenceBins(withAngles: boolean): PhysicsBin[] {
  const out: PhysicsBin[] = [];
  for (const e of [110, 150, 190]) {
    if (!withAngles) { out.push({ label: `${e}GeV`, energy: [e - 5, e + 5] }); continue; }
    for (const a of [62, 90, 118]) out.push({ label: `${e}GeV/${a}deg`, energy: [e - 5, e + 5], angle: [((a - 3) * Math.PI) / 180, ((a + 3) * Math.PI) / 180] });
  }
  return out;
}

/** A set of showers with their conditions. */
export interface ShowerSet {
  /** [n, X, Y, Z] cell energies, GeV. */
  cells: Float32Array;
  shape: [number, number, number];
  /** Primary energies, GeV, [n]. */
  energy: Float32Array;
  /** Entry angles, rad, [n] (needed for angle bins). */
  theta?: Float32Array;
}

/** Averages over the events of one bin. */
export interface BinSummary {
  label: string;
  events: number;
  /** Mean and standard deviation of ECAL sum / Ep. */
  samplingFraction: { mean: number; std: number };
  /** Mean primary energy of the bin, GeV. */
  meanEnergy: number;
  /** Mean shapes normalised to unit sum (energy fraction per slice). */
  shapeX: number[];
  shapeY: number[];
  shapeZ: number[];
  /** Mean moments 1..3 along x, y, z. */
  momentsX: number[];
  momentsY: number[];
  momentsZ: number[];
  /** Mean number of cells above the hit threshold. */
  hits: number;
  /** Mean measured angle, rad. */
  angle: number;
  /** Cell-energy spectrum: counts per event of cells in log10 bins ({@link SPECTRUM_EDGES}). */
  spectrum: number[];
  /** Fraction of cells above each threshold of {@link SPARSITY_THRESHOLDS}. */
  sparsity: number[];
}

/** Log10 edges (GeV) of the cell-energy spectrum: 1e-6 .. 1e2, 4 bins per decade. */
export const SPECTRUM_EDGES: number[] = Array.from({ length: 33 }, (_, i) => -6 + i * 0.25);
/** Thresholds (GeV) of the sparsity curve. */
export const SPARSITY_THRESHOLDS: number[] = [1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1e-1];

function inBin(bin: PhysicsBin, e: number, th: number | undefined): boolean {
  if (e < bin.energy[0] || e > bin.energy[1]) return false;
  if (!bin.angle) return true;
  return th !== undefined && th >= bin.angle[0] && th <= bin.angle[1];
}

function normalise(a: Float64Array): number[] {
  const s = a.reduce((x, y) => x + y, 0);
  return Array.from(a, (v) => (s > 0 ? v / s : 0));
}

/** Summaries of the events of `set` in each bin (bins without events get `events: 0` and zeros). */
export function summariseBins(set: ShowerSet, bins: PhysicsBin[], hitThreshold = HIT_THRESHOLD): BinSummary[] {
  const [nx, ny, nz] = set.shape;
  const per = nx * ny * nz;
  const n = set.energy.length;
  if (set.cells.length !== n * per) throw new Error(`physics: cells hold ${set.cells.length} values, expected ${n} x ${per}`);
  return bins.map((bin) => {
    const px = new Float64Array(nx);
    const py = new Float64Array(ny);
    const pz = new Float64Array(nz);
    const mx = [0, 0, 0];
    const my = [0, 0, 0];
    const mz = [0, 0, 0];
    const spectrum = new Array<number>(SPECTRUM_EDGES.length - 1).fill(0);
    const sparsity = new Array<number>(SPARSITY_THRESHOLDS.length).fill(0);
    const sfs: number[] = [];
    let hits = 0;
    let angle = 0;
    let eSum = 0;
    for (let i = 0; i < n; i++) {
      const e = set.energy[i] ?? 0;
      if (!inBin(bin, e, set.theta?.[i])) continue;
      const f = showerFeatures(set.cells, set.shape, i, hitThreshold);
      sfs.push(f.ecal / e);
      eSum += e;
      f.profileX.forEach((v, k) => { px[k] = (px[k] ?? 0) + v / Math.max(f.ecal, 1e-30); });
      f.profileY.forEach((v, k) => { py[k] = (py[k] ?? 0) + v / Math.max(f.ecal, 1e-30); });
      f.profileZ.forEach((v, k) => { pz[k] = (pz[k] ?? 0) + v / Math.max(f.ecal, 1e-30); });
      for (let k = 0; k < 3; k++) { mx[k] = (mx[k] ?? 0) + (f.momentsX[k] ?? 0); my[k] = (my[k] ?? 0) + (f.momentsY[k] ?? 0); mz[k] = (mz[k] ?? 0) + (f.momentsZ[k] ?? 0); }
      hits += f.hits;
      angle += f.angle;
      for (let c = i * per; c < (i + 1) * per; c++) {
        const v = set.cells[c] ?? 0;
        if (v <= 0) continue;
        const l = Math.log10(v);
        const b = Math.floor((l - (SPECTRUM_EDGES[0] ?? -6)) / 0.25);
        if (b >= 0 && b < spectrum.length) spectrum[b] = (spectrum[b] ?? 0) + 1;
        SPARSITY_THRESHOLDS.forEach((t, k) => { if (v > t) sparsity[k] = (sparsity[k] ?? 0) + 1; });
      }
    }
    const m = sfs.length;
    const mean = m ? sfs.reduce((a, b) => a + b, 0) / m : 0;
    const std = m ? Math.sqrt(sfs.reduce((a, b) => a + (b - mean) ** 2, 0) / m) : 0;
    const d = Math.max(m, 1);
    return {
      label: bin.label,
      events: m,
      samplingFraction: { mean, std },
      meanEnergy: eSum / d,
      shapeX: normalise(px),
      shapeY: normalise(py),
      shapeZ: normalise(pz),
      momentsX: mx.map((v) => v / d),
      momentsY: my.map((v) => v / d),
      momentsZ: mz.map((v) => v / d),
      hits: hits / d,
      angle: angle / d,
      spectrum: spectrum.map((v) => v / d),
      sparsity: sparsity.map((v) => v / (d * per)),
    };
  });
}

/**
 * The selection metric (lower is better): summed over bins where both sets have events, the mean
 * relative error of the 9 moments (`|g - m| / (|m| + 1 cell^k)`, the floor keeping near-zero central
 * moments from dominating) plus the relative L1 error of the three normalised shapes
 * (`sum |g - m| / sum m`, averaged over x, y, z).
 */
export function selectionMetric(mc: BinSummary[], gan: BinSummary[]): number {
  let total = 0;
  mc.forEach((a, i) => {
    const b = gan[i];
    if (!b || a.events === 0 || b.events === 0) return;
    let mErr = 0;
    for (const [ma, mb] of [[a.momentsX, b.momentsX], [a.momentsY, b.momentsY], [a.momentsZ, b.momentsZ]] as const) {
      for (let k = 0; k < 3; k++) mErr += Math.abs((mb[k] ?? 0) - (ma[k] ?? 0)) / (Math.abs(ma[k] ?? 0) + 1);
    }
    let pErr = 0;
    for (const [pa, pb] of [[a.shapeX, b.shapeX], [a.shapeY, b.shapeY], [a.shapeZ, b.shapeZ]] as const) {
      const s = pa.reduce((x, y) => x + y, 0);
      pErr += pa.reduce((acc, v, k) => acc + Math.abs((pb[k] ?? 0) - v), 0) / Math.max(s, 1e-30);
    }
    total += mErr / 9 + pErr / 3;
  });
  return total;
}

/** Both sets summarised on the same bins and the selection metric. */
export interface PhysicsComparison {
  bins: PhysicsBin[];
  mc: BinSummary[];
  gan: BinSummary[];
  metric: number;
  /** Relative error of the mean sampling fraction per bin, (gan - mc) / mc (NaN where a bin is empty). */
  samplingFractionError: number[];
}

/** Compare generated showers with Monte Carlo per bin. */
export function comparePhysics(mc: ShowerSet, gan: ShowerSet, bins: PhysicsBin[]): PhysicsComparison {
  const a = summariseBins(mc, bins);
  const b = summariseBins(gan, bins);
  return {
    bins,
    mc: a,
    gan: b,
    metric: selectionMetric(a, b),
    samplingFractionError: a.map((s, i) => {
      const g = b[i];
      return s.events && g?.events ? (g.samplingFraction.mean - s.samplingFraction.mean) / s.samplingFraction.mean : Number.NaN;
    }),
  };
}

/**
 * `k` energy bins (no angle split) with equal numbers of events: edges at the quantiles of
 * `energies` (GeV), labelled `lo-hiGeV`. Used by the in-loop validation on a held-out set whose
 * energies are spread over a range (the reference's 110/150/190 GeV bins hold few events of it).
 */
export function quantileEnergyBins(energies: ArrayLike<number>, k: number): PhysicsBin[] {
  const e = Array.from(energies).filter(Number.isFinite).sort((a, b) => a - b);
  if (e.length === 0) throw new Error('quantileEnergyBins: no energies');
  const q = (p: number): number => e[Math.min(e.length - 1, Math.max(0, Math.round(p * (e.length - 1))))] ?? 0;
  const out: PhysicsBin[] = [];
  for (let i = 0; i < k; i++) {
    const lo = q(i / k);
    const hi = q((i + 1) / k);
    // Half-open except the last bin, so a boundary event is counted once.
    const hiOpen = i === k - 1 ? hi : Math.max(lo, hi - 1e-9 * Math.max(1, hi));
    out.push({ label: `${Math.round(lo)}-${Math.round(hi)}GeV`, energy: [lo, hiOpen] });
  }
  return out;
}
