/**
 * MC-like electromagnetic showers in the 3DGAN's layouts, deterministic per seed, so the whole
 * pipeline (HDF5, training, physics validation) runs without Geant4.
 *
 * The model (cells are 1 radiation length deep and 1 unit wide transversely; GeV):
 * - Longitudinal: the Gamma profile `dE/dt = E b (b t)^(a-1) e^(-b t) / Gamma(a)` with `b = 0.5` and
 *   the maximum `t_max = (a - 1) / b = ln(E / E_c) - 0.5` (electron, `E_c` critical energy), smeared
 *   event by event (sigma 0.4 X0): right — the maximum grows with ln E and the depth profile is
 *   Gamma-shaped; crude — `b` does not depend on E or material, no late-shower tail correction.
 * - Transverse: per layer a core + halo mix of 2D exponentials `p e^(-r/Rc) + (1-p) e^(-r/Rh)` with
 *   `Rc = 0.2 R_M` and `Rh = R_M` (Moliere radius in cells), the core fraction falling with depth:
 *   right — a narrow core and a wide halo containing ~90 % within R_M, widening with depth; crude — no
 *   cell-to-cell correlations, no photon conversion points, no cracks or dead material.
 * - Sampling: the visible energy is `f_s E (1 + sigma_s / sqrt(E) N(0,1))` (stochastic term), then
 *   split into quanta of `q` GeV placed by Poisson draws per cell: right — a sampling fraction
 *   constant with E, resolution ~ 1/sqrt(E), sparse low-energy cells in the halo; crude — no
 *   noise term, no Landau tails of single-particle deposits.
 * - Angle: the axis enters the front face at the centre and tilts in the Y-Z plane,
 *   `y(z) = y0 + (z + 0.5) cot(theta)`; the profile is taken along the axis length, not the depth.
 * Energy and angle leaking out of the volume are lost, as in a real calorimeter.
 */
import { Rng } from '../util/random.js';

/** Options of {@link generateShowers}. */
export interface SyntheticShowerOptions {
  /** Number of events. */
  n: number;
  /** Seed: equal seeds give equal showers. Default 0. */
  seed?: number;
  /** `variable-angle` (51 x 51 x 25, angles drawn) or `fixed-angle` (25^3, 90 deg). Default `variable-angle`. */
  geometry?: 'variable-angle' | 'fixed-angle';
  /** Primary energy range, GeV, drawn uniformly. Default [2, 500]. */
  energyRange?: [number, number];
  /** Entry angle range, degrees, drawn uniformly (variable-angle only). Default [60, 120]. */
  angleRangeDeg?: [number, number];
  /** Sampling fraction (visible / primary energy). Default 0.02. */
  samplingFraction?: number;
  /** Stochastic term of the sampling fluctuations, sqrt(GeV). Default 0.15. */
  stochasticTerm?: number;
  /** Moliere radius in cells. Default 1.8 (9.3 mm of tungsten over 5.1 mm cells). */
  moliereRadius?: number;
  /** Critical energy, GeV. Default 0.008. */
  criticalEnergy?: number;
  /** Energy quantum of the Poisson sampling, GeV. Default 2e-4. */
  quantum?: number;
}

/** Events in memory: `ecal` is [n, X, Y, Z] row-major cell energies (GeV). */
export interface ShowerEvents {
  ecal: Float32Array;
  /** Cell grid [X, Y, Z]. */
  shape: [number, number, number];
  /** Primary energies, GeV, [n]. */
  energy: Float32Array;
  /** Entry angles, rad, [n] (pi/2 for the fixed-angle geometry). */
  theta: Float32Array;
}

const LANCZOS = [676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];

/** ln Gamma(x) for x > 0 (Lanczos). */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const y = x - 1;
  let s = 0.99999999999980993;
  LANCZOS.forEach((c, i) => { s += c / (y + i + 1); });
  const t = y + LANCZOS.length - 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Depth of the shower maximum (radiation lengths) of an electron of energy `e` GeV. */
export function showerMaxDepth(e: number, criticalEnergy = 0.008): number {
  return Math.max(0.5, Math.log(e / criticalEnergy) - 0.5);
}

function poisson(rng: Rng, lambda: number): number {
  if (lambda <= 0) return 0;
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * rng.normal()));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = rng.next();
  while (p > l) { k++; p *= rng.next(); }
  return k;
}

/** Generate `n` MC-like showers (see the module comment for the physics and its limits). */
export function generateShowers(opts: SyntheticShowerOptions): ShowerEvents {
  const geometry = opts.geometry ?? 'variable-angle';
  const shape: [number, number, number] = geometry === 'variable-angle' ? [51, 51, 25] : [25, 25, 25];
  const [nx, ny, nz] = shape;
  const [eLo, eHi] = opts.energyRange ?? [2, 500];
  const [aLo, aHi] = opts.angleRangeDeg ?? [60, 120];
  if (!(opts.n >= 0 && Number.isInteger(opts.n))) throw new Error(`generateShowers: n must be a non-negative integer, got ${opts.n}`);
  if (!(eLo > 0 && eHi >= eLo)) throw new Error(`generateShowers: energyRange must be 0 < lo <= hi, got [${eLo}, ${eHi}]`);
  if (!(aLo > 0 && aHi < 180 && aHi >= aLo)) throw new Error(`generateShowers: angleRangeDeg must be 0 < lo <= hi < 180, got [${aLo}, ${aHi}]`);
  const fs = opts.samplingFraction ?? 0.02;
  const sig = opts.stochasticTerm ?? 0.15;
  const rm = opts.moliereRadius ?? 1.8;
  const ec = opts.criticalEnergy ?? 0.008;
  const q = opts.quantum ?? 2e-4;
  const rng = new Rng(`showers/${opts.seed ?? 0}`);
  const cellsPer = nx * ny * nz;
  const ecal = new Float32Array(opts.n * cellsPer);
  const energy = new Float32Array(opts.n);
  const theta = new Float32Array(opts.n);
  const b = 0.5;
  const sub = 4; // midpoint sub-steps per layer for the depth integral
  for (let ev = 0; ev < opts.n; ev++) {
    const e = eLo + (eHi - eLo) * rng.next();
    const th = geometry === 'variable-angle' ? ((aLo + (aHi - aLo) * rng.next()) * Math.PI) / 180 : Math.PI / 2;
    energy[ev] = e;
    theta[ev] = th;
    // Draw the event's visible energy and shower maximum.
    const visible = Math.max(0, fs * e * (1 + (sig / Math.sqrt(e)) * rng.normal()));
    const tmax = Math.max(0.5, showerMaxDepth(e, ec) + 0.4 * rng.normal());
    const a = b * tmax + 1;
    const lnNorm = a * Math.log(b) - lnGamma(a);
    const cot = Math.cos(th) / Math.sin(th);
    const pathPerLayer = 1 / Math.sin(th); // radiation lengths along the axis per layer
    const x0 = (nx - 1) / 2 + (rng.next() - 0.5);
    const y0 = (ny - 1) / 2 + (rng.next() - 0.5);
    const base = ev * cellsPer;
    for (let z = 0; z < nz; z++) {
      // Fraction of the shower in this layer: integrate the Gamma profile along the axis.
      let frac = 0;
      for (let s = 0; s < sub; s++) {
        const t = (z + (s + 0.5) / sub) * pathPerLayer;
        frac += Math.exp(lnNorm + (a - 1) * Math.log(t) - b * t) * (pathPerLayer / sub);
      }
      const layerE = visible * frac;
      if (layerE <= 0) continue;
      const yc = y0 + (z + 0.5) * cot;
      const depth = (z + 0.5) * pathPerLayer;
      const pCore = Math.max(0.5, 0.9 - 0.02 * depth);
      const rc = 0.2 * rm * (1 + 0.05 * depth);
      const rh = rm;
      const nc = 1 / (2 * Math.PI * rc * rc);
      const nh = 1 / (2 * Math.PI * rh * rh);
      for (let x = 0; x < nx; x++) {
        const dx = x - x0;
        if (Math.abs(dx) > 8 * rh) continue;
        for (let y = 0; y < ny; y++) {
          const dy = y - yc;
          if (Math.abs(dy) > 8 * rh) continue;
          const r = Math.sqrt(dx * dx + dy * dy);
          const dens = pCore * nc * Math.exp(-r / rc) + (1 - pCore) * nh * Math.exp(-r / rh);
          const k = poisson(rng, (layerE * dens) / q);
          if (k > 0) ecal[base + (x * ny + y) * nz + z] = k * q;
        }
      }
    }
  }
  return { ecal, shape, energy, theta };
}
