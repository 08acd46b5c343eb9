// The statistics the causal engine is built on, written here because they are the product's own: robust location and
// scale, quantiles, a seeded RNG, the normal distribution, and dense least squares (Cholesky) for small designs.
import { rng } from '../generate/rng.js';

/** The project's seeded PRNG (mulberry32); seed 0 is replaced, as it always was here. */
export const createRng = (seed: number): (() => number) => rng(seed >>> 0 || 0x9e3779b9);

/** Standard normal draws from a uniform RNG (Box–Muller, caching the second value). */
export function createNormal(rand: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = rand();
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export function median(xs: ArrayLike<number>): number {
  const n = xs.length;
  if (n === 0) return NaN;
  const a = Float64Array.from(xs as ArrayLike<number>).sort();
  return n % 2 ? a[(n - 1) / 2]! : (a[n / 2 - 1]! + a[n / 2]!) / 2;
}

/** Median absolute deviation scaled to a normal standard deviation (×1.4826). */
export function madSigma(xs: ArrayLike<number>, center = median(xs)): number {
  const d = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) d[i] = Math.abs(xs[i]! - center);
  return 1.4826 * median(d);
}

/** Linear-interpolated quantile (type 7) of an already sorted array. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length ? s / xs.length : NaN;
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/**
 * Least squares with a small ridge on every column but the first (the intercept): returns the coefficients, the
 * inverse of the (ridged) normal matrix (for parameter covariance) and the residuals. X is row-major n×p.
 */
export function leastSquares(X: Float64Array, y: ArrayLike<number>, n: number, p: number, ridge = 1e-6): { beta: Float64Array; xtxInv: Float64Array; residuals: Float64Array; logDet: number } {
  const xtx = new Float64Array(p * p);
  const xty = new Float64Array(p);
  for (let r = 0; r < n; r++) {
    const off = r * p;
    const yr = y[r]!;
    for (let i = 0; i < p; i++) {
      const xi = X[off + i]!;
      if (xi === 0) continue;
      xty[i] += xi * yr;
      for (let j = i; j < p; j++) xtx[i * p + j] += xi * X[off + j]!;
    }
  }
  for (let i = 0; i < p; i++) for (let j = 0; j < i; j++) xtx[i * p + j] = xtx[j * p + i]!;
  // Ridge relative to each column's scale keeps collinear seasonal dummies and controls solvable.
  for (let i = 1; i < p; i++) xtx[i * p + i] += ridge * Math.max(1, xtx[i * p + i]!);
  const L = cholesky(xtx, p);
  const beta = choleskySolve(L, xty, p);
  const xtxInv = new Float64Array(p * p);
  const e = new Float64Array(p);
  for (let k = 0; k < p; k++) {
    e.fill(0);
    e[k] = 1;
    const col = choleskySolve(L, e, p);
    for (let i = 0; i < p; i++) xtxInv[i * p + k] = col[i]!;
  }
  const residuals = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let f = 0;
    const off = r * p;
    for (let i = 0; i < p; i++) f += X[off + i]! * beta[i]!;
    residuals[r] = y[r]! - f;
  }
  let logDet = 0;
  for (let i = 0; i < p; i++) logDet += 2 * Math.log(L[i * p + i]!);
  return { beta, xtxInv, residuals, logDet };
}

/** Lower-triangular Cholesky factor of a symmetric positive (semi)definite p×p matrix (jitter on tiny pivots). */
export function cholesky(A: Float64Array, p: number): Float64Array {
  const L = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * p + j]!;
      for (let k = 0; k < j; k++) s -= L[i * p + k]! * L[j * p + k]!;
      if (i === j) L[i * p + i] = Math.sqrt(Math.max(s, 1e-12 * Math.max(1, Math.abs(A[i * p + i]!))));
      else L[i * p + j] = s / L[j * p + j]!;
    }
  }
  return L;
}

export function choleskySolve(L: Float64Array, b: ArrayLike<number>, p: number): Float64Array {
  const z = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * p + k]! * z[k]!;
    z[i] = s / L[i * p + i]!;
  }
  const x = new Float64Array(p);
  for (let i = p - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < p; k++) s -= L[k * p + i]! * x[k]!;
    x[i] = s / L[i * p + i]!;
  }
  return x;
}

/** Lag-1 autocorrelation of a zero-mean-ish series, clamped to [-0.99, 0.99]. */
export function lag1(xs: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  const m = mean(xs);
  for (let i = 0; i < xs.length; i++) {
    const d = xs[i]! - m;
    den += d * d;
    if (i > 0) num += d * (xs[i - 1]! - m);
  }
  return den > 0 ? Math.max(-0.99, Math.min(0.99, num / den)) : 0;
}

export const HOUR = 3_600_000;
export const DAY = 86_400_000;
export const WEEK = 7 * DAY;

/** The typical spacing of sorted timestamps (median difference), in ms. */
export function typicalStep(ts: ArrayLike<number>): number {
  if (ts.length < 2) return HOUR;
  const d = new Float64Array(Math.min(ts.length - 1, 2000));
  for (let i = 0; i < d.length; i++) d[i] = ts[i + 1]! - ts[i]!;
  const m = median(d);
  return m > 0 ? m : HOUR;
}
