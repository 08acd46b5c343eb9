// Counterfactual impact: what the metric would have done without the change, from a structural model fitted on the
// pre-period only: regression on level + trend + seasonal profile + optional control series, whose errors are a latent
// AR(1) level (up to a near random walk) plus white noise, a small state-space model fitted by maximum likelihood and
// used through its Kalman filter for GLS. Then simulated forward: each draw takes coefficients from their sampling
// distribution, the latent level from its filtered distribution at the onset, and a fresh noise path. Intervals are
// quantiles of the draws, so parameter, level-drift and noise uncertainty are all in them.
// Against seed 002: the effect keeps its sign (a gain is a gain), it ends when the series is back inside its
// counterfactual band (a treatment that never ends is reported as ongoing, not as the rest of history), and the
// controls are only ever series the caller gives (never derived from the outcome).
import { DAY, WEEK, cholesky, createNormal, createRng, leastSquares, quantileSorted, typicalStep } from './stats.js';

export interface ImpactInput {
  ts: ArrayLike<number>;
  values: ArrayLike<number>;
  /** First affected point (ms). */
  onset: number;
  /** Last affected point (ms, inclusive); absent = detected (the effect ends when the series is back to normal). */
  end?: number | null;
  /** Control series aligned with ts (controls[j][i] is control j at ts[i]); they must not be affected by the change. */
  controls?: { names: string[]; values: ArrayLike<number>[] };
  /** How much pre-period history the model is fitted on (default 8 weeks; all of it when shorter). */
  preWindowMs?: number;
  draws?: number;
  seed?: number;
}

export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}

export interface PointEffect {
  ts: string;
  actual: number;
  expected: number;
  lower: number;
  upper: number;
}

export interface ImpactResult {
  onset: string;
  end: string;
  /** True when the series had not recovered by its last point (the effect is measured up to there). */
  ongoing: boolean;
  durationMs: number;
  points: number;
  effect: { cumulative: Interval; average: Interval; relative: Interval; pointwise: PointEffect[] };
  model: { seasonality: string; trend: boolean; logScale: boolean; controls: string[]; prePoints: number; ar1: number; residualSigma: number };
}

export class ImpactError extends Error {}

const iso = (ms: number) => new Date(ms).toISOString();

export function estimateImpact(input: ImpactInput): ImpactResult {
  const n = input.ts.length;
  if (n !== input.values.length) throw new ImpactError('ts and values differ in length');
  const ts = Float64Array.from(input.ts);
  const ys = Float64Array.from(input.values);
  for (let i = 1; i < n; i++) if (!(ts[i]! > ts[i - 1]!)) throw new ImpactError('timestamps must be strictly increasing');
  const onsetIdx = ts.findIndex((t) => t >= input.onset);
  if (onsetIdx < 0) throw new ImpactError('onset is after the last point');
  const step = typicalStep(ts);
  const preWindow = input.preWindowMs ?? 8 * WEEK;
  let preStart = 0;
  while (preStart < onsetIdx && ts[preStart]! < input.onset - preWindow) preStart++;
  const preN = onsetIdx - preStart;
  if (preN < 8) throw new ImpactError(`need at least 8 points before the onset to learn from (have ${preN})`);
  const controls = input.controls ?? { names: [], values: [] };
  const ctrlRaw = controls.values.map((c) => fillForward(Float64Array.from(c)));

  // Log scale when everything the model reads is positive: multiplicative seasonality and proportional noise.
  let logScale = true;
  for (let i = preStart; i < onsetIdx; i++) if (!(ys[i]! > 0)) logScale = false;
  for (const c of ctrlRaw) for (let i = preStart; i < n; i++) if (!(c[i]! > 0)) logScale = false;
  const tf = (v: number) => (logScale ? Math.log(v) : v);
  // Each control enters as itself and as its centred one-day (one-week for daily data) average: a control's own
  // noise would otherwise hide the slow movements it shares with the metric (errors-in-variables attenuation).
  const smoothW = step < DAY ? Math.max(1, Math.round(DAY / step)) : 7;
  const ctrl = ctrlRaw.flatMap((c) => {
    const t = Float64Array.from(c, tf);
    return [t, centredMean(t, smoothW)];
  });
  const inv = (v: number) => (logScale ? Math.exp(v) : v);

  // Design: seasonal terms sized to what the pre-period can support.
  const preSpan = ts[onsetIdx - 1]! - ts[preStart]!;
  const dp = step < DAY ? Math.max(1, Math.round(DAY / step)) : 0;
  // Seasonal blocks: time of day (one dummy per slot, or Fourier terms below 30-minute steps), day of week, and a
  // separate weekend time-of-day shape once three weeks of history can support it.
  const useHod = dp > 1 && preSpan >= 2 * DAY;
  const useDow = (dp > 1 && preSpan >= WEEK + DAY) || (step >= DAY * 0.9 && step <= DAY * 1.1 && preN >= 21);
  const useWeekendHod = useHod && useDow && preSpan >= 3 * WEEK - step;
  const fourier = dp > 48;
  const K = 6;
  const hodCols = useHod ? (fourier ? 2 * K : dp - 1) : 0;
  const seasonality = [useHod ? 'time-of-day' : '', useWeekendHod ? 'weekend time-of-day' : '', useDow ? 'day-of-week' : ''].filter(Boolean).join(' + ') || 'none';
  const trend = preSpan >= WEEK;
  const phaseOf = (t: number) => {
    const hod = dp ? Math.floor((((t % DAY) + DAY) % DAY) / step) % dp : 0;
    const dow = (((Math.floor(t / DAY) + 4) % 7) + 7) % 7;
    return { hod, dow };
  };
  const trendCol = 1;
  const hodStart = trend ? 2 : 1;
  const dowStart = hodStart + hodCols;
  const weekendStart = dowStart + (useDow ? 6 : 0);
  const ctrlStart = weekendStart + (useWeekendHod ? hodCols : 0);
  const p = ctrlStart + ctrl.length;
  const tScale = Math.max(preSpan, step);
  // Each row: nonzero column indices and values (rows are sparse: intercept, trend, a few dummies, controls).
  const row = (i: number): [number[], number[]] => {
    const idx = [0];
    const val = [1];
    const t = ts[i]!;
    if (trend) {
      idx.push(trendCol);
      val.push((t - input.onset) / tScale);
    }
    const { hod, dow } = phaseOf(t);
    const timeOfDay = (off: number) => {
      if (fourier) {
        const a = (2 * Math.PI * (((t % DAY) + DAY) % DAY)) / DAY;
        for (let k = 1; k <= K; k++) {
          idx.push(off + 2 * (k - 1), off + 2 * (k - 1) + 1);
          val.push(Math.sin(k * a), Math.cos(k * a));
        }
      } else if (hod > 0) {
        idx.push(off + hod - 1);
        val.push(1);
      }
    };
    if (useHod) timeOfDay(hodStart);
    if (useDow && dow > 0) {
      idx.push(dowStart + dow - 1);
      val.push(1);
    }
    if (useWeekendHod && (dow === 0 || dow === 6)) timeOfDay(weekendStart);
    for (let j = 0; j < ctrl.length; j++) {
      idx.push(ctrlStart + j);
      val.push(ctrl[j]![i]!);
    }
    return [idx, val];
  };

  // Fit on the pre-period: OLS, then the residual model (latent AR(1) + white noise, by maximum likelihood over a
  // grid), then GLS through that model's Kalman filter; twice.
  const X = new Float64Array(preN * p);
  const y = new Float64Array(preN);
  for (let r = 0; r < preN; r++) {
    const [idx, val] = row(preStart + r);
    for (let k = 0; k < idx.length; k++) X[r * p + idx[k]!] = val[k]!;
    y[r] = tf(ys[preStart + r]!);
  }
  // The noise model (φ, λ) by restricted maximum likelihood: a coarse ML grid on the OLS residuals finds the region,
  // then REML (which counts the degrees of freedom the regression used; plain ML underrates a slow level drift that
  // trend and seasonal terms partly absorb in-sample) over its neighbourhood. The noise model is uncertain too:
  // draws are shared among the models the REML likelihood supports, each with its own GLS fit.
  const ml = fitResidualModel(leastSquares(X, y, preN, p).residuals);
  const tried = new Map<string, { model: NoiseModel; gls: ReturnType<typeof glsFit>; ll: number }>();
  for (const c of ml.slice(0, 3)) {
    const pi = PHIS.indexOf(c.model.phi);
    const li = LAMBDAS.indexOf(c.model.lambda);
    for (let dpi = 0; dpi <= 2; dpi++)
      for (let dli = -1; dli <= 3; dli++) {
        const phi = PHIS[pi + dpi];
        const lambda = LAMBDAS[li + dli];
        if (phi === undefined || lambda === undefined || (lambda === 0 && phi > 0)) continue;
        const key = `${phi}|${lambda}`;
        if (tried.has(key)) continue;
        const gls = glsFit(X, y, preN, p, { phi, lambda });
        tried.set(key, { model: { phi, lambda }, gls, ll: gls.reml });
      }
  }
  const ranked = [...tried.values()].sort((u, v) => v.ll - u.ll);
  const supported = ranked
    .map((c) => ({ ...c, w: Math.exp(c.ll - ranked[0]!.ll) }))
    .filter((c) => c.w >= MODEL_WEIGHT_MIN)
    .slice(0, MODEL_MAX);
  const wSum = supported.reduce((acc, c) => acc + c.w, 0);
  const S = input.draws ?? 1000;
  const seed = input.seed ?? 12345;
  let allotted = 0;
  const components = supported.map((c, i) => {
    const gls = c.gls;
    const cov = new Float64Array(p * p);
    for (let k = 0; k < p * p; k++) cov[k] = gls.xtxInv[k]! * gls.s2;
    const draws = i === supported.length - 1 ? S - allotted : Math.round((S * c.w) / wSum);
    allotted += draws;
    return {
      model: c.model,
      gls,
      Lc: cholesky(cov, p),
      draws,
      r2: gls.s2, // observation noise variance
      q2: c.model.lambda * gls.s2, // latent innovation variance
      pEnd: gls.pEnd * gls.s2, // filtered latent variance at the last pre point
    };
  });
  const main = components[0]!;
  const phi = main.model.phi;
  const r2 = main.r2;

  const H = n - onsetIdx;
  const rows = Array.from({ length: H }, (_, h) => row(onsetIdx + h));

  // One simulation pass; `visit(h, s, cf)` sees the counterfactual of draw s at post point h (draws are reproducible
  // from the seed, so two passes see the same paths). The latent state at the onset is conditioned on the drawn
  // coefficients (its filtered mean is linear in them), so coefficient and state uncertainty are not double counted.
  const simulate = (horizon: number, drawFraction: number, visit: (h: number, s: number, cf: number) => void) => {
    const rand = createRng(seed);
    const normal = createNormal(rand);
    const z = new Float64Array(p);
    const bs = new Float64Array(p);
    let s = 0;
    for (const c of components) {
      const { gls, Lc } = c;
      const cphi = c.model.phi;
      const sq = Math.sqrt(c.q2);
      const sr = Math.sqrt(c.r2);
      const sp = Math.sqrt(c.pEnd);
      const draws = Math.max(1, Math.round(c.draws * drawFraction));
      for (let d = 0; d < draws; d++, s++) {
        for (let i = 0; i < p; i++) z[i] = normal();
        let m = gls.mY;
        for (let i = 0; i < p; i++) {
          let v = gls.beta[i]!;
          for (let k = 0; k <= i; k++) v += Lc[i * p + k]! * z[k]!;
          bs[i] = v;
          m -= v * gls.mX[i]!;
        }
        let x = m + sp * normal();
        for (let h = 0; h < horizon; h++) {
          x = cphi * x + sq * normal();
          const [idx, val] = rows[h]!;
          let f = x + sr * normal();
          for (let k = 0; k < idx.length; k++) f += val[k]! * bs[idx[k]!]!;
          visit(h, s, inv(f));
        }
      }
    }
  };

  // Pass 1 (a third of the draws, all post points): the counterfactual mean per point → the end of the effect.
  let endIdx: number; // inclusive, in post coordinates
  let ongoing = false;
  if (input.end !== undefined && input.end !== null) {
    endIdx = -1;
    for (let h = 0; h < H; h++) if (ts[onsetIdx + h]! <= input.end) endIdx = h;
    if (endIdx < 0) throw new ImpactError('end is before the onset');
  } else {
    const sum = new Float64Array(H);
    const seen = new Set<number>();
    simulate(H, 1 / 3, (h, s, cf) => {
      sum[h] += cf;
      seen.add(s);
    });
    const mu = Float64Array.from(sum, (v) => v / seen.size);
    // Relative effect per point, and the per-point noise in the same units.
    let meanLevel = 0;
    for (let h = 0; h < H; h++) meanLevel += Math.abs(mu[h]!) / H;
    const rel = Float64Array.from(mu, (m, h) => (ys[onsetIdx + h]! - m) / (logScale ? Math.max(Math.abs(m), 1e-12) : Math.max(meanLevel, 1e-12)));
    const noiseRel = logScale ? Math.sqrt(r2) : Math.sqrt(r2) / Math.max(meanLevel, 1e-12);
    const found = detectEnd(rel, noiseRel, step);
    endIdx = found.endIdx;
    ongoing = found.ongoing;
  }

  // Pass 2: per-draw cumulative effect over [onset, end] and per-point quantiles.
  const W = endIdx + 1;
  const cumCf = new Float64Array(S);
  const perPoint = new Float64Array(W * S);
  simulate(W, 1, (h, s, cf) => {
    cumCf[s] += cf;
    perPoint[h * S + s] = cf;
  });
  let actualSum = 0;
  for (let h = 0; h < W; h++) actualSum += ys[onsetIdx + h]!;
  const cumEffect = Float64Array.from(cumCf, (c) => actualSum - c).sort();
  const relEffect = Float64Array.from(cumCf, (c) => (c !== 0 ? (actualSum - c) / Math.abs(c) : 0)).sort();
  let cfMean = 0;
  for (let s = 0; s < S; s++) cfMean += cumCf[s]! / S;
  const cumulative: Interval = { estimate: actualSum - cfMean, lower: quantileSorted(cumEffect, 0.025), upper: quantileSorted(cumEffect, 0.975) };
  const average: Interval = { estimate: cumulative.estimate / W, lower: cumulative.lower / W, upper: cumulative.upper / W };
  const relative: Interval = {
    estimate: cfMean !== 0 ? cumulative.estimate / Math.abs(cfMean) : 0,
    lower: quantileSorted(relEffect, 0.025),
    upper: quantileSorted(relEffect, 0.975),
  };
  const pointwise: PointEffect[] = [];
  const buf = new Float64Array(S);
  for (let h = 0; h < W; h++) {
    buf.set(perPoint.subarray(h * S, (h + 1) * S));
    let expected = 0;
    for (let s = 0; s < S; s++) expected += buf[s]! / S;
    buf.sort();
    pointwise.push({ ts: iso(ts[onsetIdx + h]!), actual: ys[onsetIdx + h]!, expected, lower: quantileSorted(buf, 0.025), upper: quantileSorted(buf, 0.975) });
  }
  const endTs = ts[onsetIdx + endIdx]!;
  return {
    onset: iso(ts[onsetIdx]!),
    end: iso(endTs),
    ongoing,
    durationMs: endTs - ts[onsetIdx]! + step,
    points: W,
    effect: { cumulative, average, relative, pointwise },
    model: {
      seasonality: fourier && useHod ? `${seasonality} (fourier)` : seasonality,
      trend,
      logScale,
      controls: controls.names,
      prePoints: preN,
      ar1: phi,
      residualSigma: Math.sqrt(r2),
    },
  };
}

/**
 * The last affected post point: the best split of the post-period effect into two constant-mean segments (each at
 * least `w` points, w ≈ 6 hours). The effect has ended at the split when the second segment's mean is small next to
 * the first's (< 35 %) and the step between them is clearly beyond the noise; otherwise the effect is ongoing.
 */
export function detectEnd(rel: ArrayLike<number>, noiseSd: number, stepMs: number): { endIdx: number; ongoing: boolean } {
  const H = rel.length;
  const w = Math.max(3, Math.min(24, Math.round((6 * 3_600_000) / stepMs)));
  if (H < 2 * w) return { endIdx: H - 1, ongoing: true };
  const cs = new Float64Array(H + 1);
  const cs2 = new Float64Array(H + 1);
  for (let i = 0; i < H; i++) {
    cs[i + 1] = cs[i]! + rel[i]!;
    cs2[i + 1] = cs2[i]! + rel[i]! ** 2;
  }
  const sse = (a: number, b: number) => cs2[b]! - cs2[a]! - (cs[b]! - cs[a]!) ** 2 / (b - a);
  let best = -1;
  let bestCost = Infinity;
  for (let e = w; e <= H - w; e++) {
    const c = sse(0, e) + sse(e, H);
    if (c < bestCost) {
      bestCost = c;
      best = e;
    }
  }
  const m1 = cs[best]! / best;
  const m2 = (cs[H]! - cs[best]!) / (H - best);
  const jump = Math.abs(m1 - m2) / (noiseSd * Math.sqrt(1 / best + 1 / (H - best)));
  if (Math.abs(m2) < 0.35 * Math.abs(m1) && jump > 4) return { endIdx: best - 1, ongoing: false };
  return { endIdx: H - 1, ongoing: true };
}

interface NoiseModel {
  phi: number;
  /** Latent innovation variance relative to the observation noise variance. */
  lambda: number;
}

// Noise models whose REML likelihood is at least 2 % of the best one share the draws (at most four of them).
const MODEL_WEIGHT_MIN = 0.02;
const MODEL_MAX = 4;
const PHIS = [0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998];
const LAMBDAS = [0, ...Array.from({ length: 25 }, (_, i) => 10 ** (-4 + i * 0.25))];

/** Kalman gains of the residual model x_t = φx_{t-1} + η, e_t = x_t + ε (Var ε = 1, Var η = λ), stationary start. */
function gains(n: number, m: NoiseModel): { F: Float64Array; K: Float64Array; pEnd: number } {
  const F = new Float64Array(n);
  const K = new Float64Array(n);
  let P = m.lambda / (1 - m.phi * m.phi);
  let pf = 0;
  for (let t = 0; t < n; t++) {
    F[t] = P + 1;
    K[t] = P / F[t]!;
    pf = P / F[t]!;
    P = m.phi * m.phi * pf + m.lambda;
  }
  return { F, K, pEnd: pf };
}

/** Runs the filter over z (stride/offset to read a column of a row-major matrix): whitened innovations and the last filtered state. */
function whiten(z: Float64Array, n: number, stride: number, offset: number, phi: number, g: { F: Float64Array; K: Float64Array }, out: Float64Array | null): number {
  let a = 0;
  let m = 0;
  for (let t = 0; t < n; t++) {
    const v = z[t * stride + offset]! - a;
    if (out) out[t * stride + offset] = v / Math.sqrt(g.F[t]!);
    m = a + g.K[t]! * v;
    a = phi * m;
  }
  return m;
}

/** Log-likelihood of every (φ, λ) on the grid for the residuals (the scale concentrated out), best first. */
function fitResidualModel(e: Float64Array): Array<{ model: NoiseModel; ll: number }> {
  const n = e.length;
  const out: Array<{ model: NoiseModel; ll: number }> = [];
  for (const phi of PHIS) {
    for (const lambda of LAMBDAS) {
      if (lambda === 0 && phi > 0) continue;
      let P = lambda / (1 - phi * phi);
      let a = 0;
      let sumLogF = 0;
      let sumV2 = 0;
      for (let t = 0; t < n; t++) {
        const F = P + 1;
        const v = e[t]! - a;
        sumLogF += Math.log(F);
        sumV2 += (v * v) / F;
        const k = P / F;
        a = phi * (a + k * v);
        P = phi * phi * (P / F) + lambda;
      }
      out.push({ model: { phi, lambda }, ll: -0.5 * sumLogF - 0.5 * n * Math.log(sumV2 / n) });
    }
  }
  return out.sort((x, y) => y.ll - x.ll);
}

/** GLS through the residual model's filter: coefficients, their (unscaled) covariance, residuals, and what the
 * filtered latent state at the last point is made of (mY − Σ β_j mX_j). */
function glsFit(X: Float64Array, y: Float64Array, n: number, p: number, m: NoiseModel) {
  const g = gains(n, m);
  const Xw = new Float64Array(n * p);
  const yw = new Float64Array(n);
  const mX = new Float64Array(p);
  for (let j = 0; j < p; j++) mX[j] = whiten(X, n, p, j, m.phi, g, Xw);
  const mY = whiten(y, n, 1, 0, m.phi, g, yw);
  const ls = leastSquares(Xw, yw, n, p);
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ls.residuals[i]! ** 2;
  const s2 = ss / Math.max(1, n - p);
  const residuals = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let f = 0;
    for (let j = 0; j < p; j++) f += X[r * p + j]! * ls.beta[j]!;
    residuals[r] = y[r]! - f;
  }
  let sumLogF = 0;
  for (let t = 0; t < n; t++) sumLogF += Math.log(g.F[t]!);
  // Restricted log-likelihood with the scale profiled out (constants dropped).
  const reml = -0.5 * (sumLogF + ls.logDet + (n - p) * Math.log(s2));
  return { beta: ls.beta, xtxInv: ls.xtxInv, s2, residuals, mX, mY, pEnd: g.pEnd, reml };
}

function centredMean(a: Float64Array, w: number): Float64Array {
  const n = a.length;
  const cs = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) cs[i + 1] = cs[i]! + a[i]!;
  const half = Math.floor(w / 2);
  return Float64Array.from(a, (_, i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(n, i + half + 1);
    return (cs[hi]! - cs[lo]!) / (hi - lo);
  });
}

/** Last observation carried forward (then backward for leading gaps) over NaN values. */
function fillForward(a: Float64Array): Float64Array {
  let last = NaN;
  for (let i = 0; i < a.length; i++) {
    if (Number.isFinite(a[i]!)) last = a[i]!;
    else a[i] = last;
  }
  const first = a.find((v) => Number.isFinite(v));
  if (first === undefined) throw new ImpactError('a control series has no values');
  for (let i = 0; i < a.length && !Number.isFinite(a[i]!); i++) a[i] = first;
  return a;
}

/** Seed 002's estimate, kept only as the eval's baseline: mean after minus mean before, times the days after. */
export function beforeAfterBaseline(values: ArrayLike<number>, onsetIdx: number, endIdx: number, preN: number): number {
  let pre = 0;
  let post = 0;
  const from = Math.max(0, onsetIdx - preN);
  for (let i = from; i < onsetIdx; i++) pre += values[i]!;
  for (let i = onsetIdx; i <= endIdx; i++) post += values[i]!;
  const w = endIdx - onsetIdx + 1;
  return (post / w - pre / (onsetIdx - from)) * w;
}

