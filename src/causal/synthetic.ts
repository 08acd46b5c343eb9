// Synthetic business metrics with known truth, for the eval, the tests and the demo: a multiplicative series
// (level × trend × daily profile × weekday factor × shared market factor × noise) with an optional injected effect,
// plus control series that share the seasonality and the market factor but never the effect.
import { DAY, createNormal, createRng } from './stats.js';

export type EffectShape = 'step' | 'ramp' | 'temporary';

export interface SyntheticOptions {
  seed: number;
  start?: number;
  stepMs?: number;
  points: number;
  base?: number;
  /** Relative noise per point (coefficient of variation). */
  noise?: number;
  /** Relative growth per day. */
  trendPerDay?: number;
  dailyAmplitude?: number;
  weeklyAmplitude?: number;
  /** Std-dev per step of the shared log market factor (a slowly mean-reverting walk the controls also see). */
  marketWalk?: number;
  controls?: number;
  effect?: { atIndex: number; shape: EffectShape; size: number; durationPoints?: number; rampPoints?: number };
  /** Isolated outliers: fraction of points multiplied by a random factor in [1.5, 3] or [0.3, 0.6]. */
  outlierRate?: number;
}

export interface SyntheticSeries {
  ts: number[];
  values: number[];
  /** The same series without the effect (same noise): the true counterfactual. */
  counterfactual: number[];
  controls: number[][];
  /** Relative effect applied at each point (0 outside the effect). */
  effect: number[];
  outliers: number[];
}

export function syntheticSeries(o: SyntheticOptions): SyntheticSeries {
  const rand = createRng(o.seed);
  const normal = createNormal(rand);
  const start = o.start ?? Date.UTC(2025, 0, 6);
  const step = o.stepMs ?? 3_600_000;
  const base = o.base ?? 1000;
  const noise = o.noise ?? 0.03;
  const dailyAmp = o.dailyAmplitude ?? 0.5;
  const weeklyAmp = o.weeklyAmplitude ?? 0.2;
  const trend = o.trendPerDay ?? 0;
  const walk = o.marketWalk ?? 0;
  const nc = o.controls ?? 0;
  const phaseShift = rand() * 2 * Math.PI;
  const ctrlBase = Array.from({ length: nc }, () => base * (0.3 + rand()));
  const ctrlLoad = Array.from({ length: nc }, () => 0.7 + 0.6 * rand());
  let market = 0;
  const out: SyntheticSeries = { ts: [], values: [], counterfactual: [], controls: Array.from({ length: nc }, () => []), effect: [], outliers: [] };
  for (let i = 0; i < o.points; i++) {
    const t = start + i * step;
    const dayFrac = (((t % DAY) + DAY) % DAY) / DAY;
    const dow = (Math.floor(t / DAY) + 4) % 7;
    const daily = step < DAY ? 1 + dailyAmp * Math.sin(2 * Math.PI * dayFrac + phaseShift) * (0.8 + 0.2 * Math.cos(4 * Math.PI * dayFrac)) : 1;
    const weekly = dow === 0 || dow === 6 ? 1 - weeklyAmp : 1 + (weeklyAmp * 2) / 5 - (dow === 5 ? weeklyAmp * 0.3 : 0);
    market = 0.995 * market + walk * normal();
    const growth = Math.exp((trend * (t - start)) / DAY);
    const mean = base * growth * daily * weekly * Math.exp(market);
    const cf = mean * (1 + noise * normal());
    let e = 0;
    if (o.effect) {
      const k = i - o.effect.atIndex;
      const dur = o.effect.durationPoints ?? Infinity;
      if (k >= 0 && k < dur) {
        if (o.effect.shape === 'ramp') e = o.effect.size * Math.min(1, (k + 1) / (o.effect.rampPoints ?? 12));
        else e = o.effect.size;
      }
    }
    let v = cf * (1 + e);
    if (o.outlierRate && rand() < o.outlierRate) {
      v *= rand() < 0.5 ? 1.5 + 1.5 * rand() : 0.3 + 0.3 * rand();
      out.outliers.push(i);
    }
    out.ts.push(t);
    out.values.push(v);
    out.counterfactual.push(cf);
    out.effect.push(e);
    for (let j = 0; j < nc; j++) {
      out.controls[j]!.push(ctrlBase[j]! * growth * daily * weekly * Math.exp(ctrlLoad[j]! * market) * (1 + noise * normal()));
    }
  }
  return out;
}
