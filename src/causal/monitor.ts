// Online metric monitor: a robust Holt-Winters filter per series (level, trend, time-of-day profile, day-of-week
// offset), in log space when the series is positive so a 20 % drop looks the same at 3 am and at noon.
// Each point is judged on the state learned from the points before it only, then (if normal) learned from with its
// residual clipped; the scale is the MAD of recent one-step residuals. Seed 002 scored a point against a window that
// contained the point itself; here prediction always happens before update.
import { DAY, WEEK, madSigma, median, typicalStep } from './stats.js';

export type Direction = 'drop' | 'spike';

export interface MonitorOptions {
  /** Point spacing; inferred from the warm-up points when absent. */
  stepMs?: number;
  /** How much history is learned before points are judged (default: 14 days below daily steps, else 28 steps). */
  warmupMs?: number;
  /** Evidence thresholds (in robust standard deviations) for the last 1, 2 and 3 points. */
  thresholds?: [number, number, number];
  /** Level, trend, time-of-day and day-of-week learning rates. */
  alpha?: number;
  beta?: number;
  gammaDay?: number;
  gammaWeek?: number;
  /** Consecutive anomalous points after which the monitor starts adapting to a new normal (default: one day). */
  freezeMaxPoints?: number;
}

export interface Judgement {
  ts: number;
  value: number;
  /** False while the monitor is still learning (no verdict: score 0). */
  judged: boolean;
  expected: number | null;
  lower: number | null;
  upper: number | null;
  /** Robust z of this point alone (negative = below expected). */
  z: number;
  score: number;
  anomaly: boolean;
  direction: Direction | null;
  explanation: string;
}

export interface MonitorState {
  v: 1;
  opts: Required<Omit<MonitorOptions, 'stepMs' | 'warmupMs'>> & { stepMs: number | null; warmupMs: number | null };
  warm: Array<[number, number]>;
  ready: boolean;
  log: boolean;
  floor: number;
  level: number;
  trend: number;
  day: number[];
  week: number[];
  lastTs: number | null;
  resid: number[];
  recentZ: number[];
  frozen: number;
  seen: number;
}

const DEFAULTS = {
  thresholds: [5.5, 5, 4.5] as [number, number, number],
  alpha: 0.1,
  beta: 0.0005,
  gammaDay: 0.15,
  gammaWeek: 0.01,
};

const SCALE_WINDOW = 336;
const CLIP = 2;

export class StreamingMonitor {
  private s: MonitorState;

  constructor(opts: MonitorOptions = {}, state?: MonitorState) {
    this.s = state ?? {
      v: 1,
      opts: {
        stepMs: opts.stepMs ?? null,
        warmupMs: opts.warmupMs ?? null,
        thresholds: opts.thresholds ?? DEFAULTS.thresholds,
        alpha: opts.alpha ?? DEFAULTS.alpha,
        beta: opts.beta ?? DEFAULTS.beta,
        gammaDay: opts.gammaDay ?? DEFAULTS.gammaDay,
        gammaWeek: opts.gammaWeek ?? DEFAULTS.gammaWeek,
        freezeMaxPoints: opts.freezeMaxPoints ?? 0,
      },
      warm: [],
      ready: false,
      log: false,
      floor: 0,
      level: 0,
      trend: 0,
      day: [],
      week: [],
      lastTs: null,
      resid: [],
      recentZ: [],
      frozen: 0,
      seen: 0,
    };
  }

  static fromJSON(state: MonitorState): StreamingMonitor {
    return new StreamingMonitor({}, structuredClone(state));
  }

  toJSON(): MonitorState {
    return structuredClone(this.s);
  }

  get lastTimestamp(): number | null {
    return this.s.lastTs ?? (this.s.warm.length ? this.s.warm[this.s.warm.length - 1]![0] : null);
  }

  private get step(): number {
    return this.s.opts.stepMs ?? DAY;
  }

  private dayPhases(): number {
    return this.step < DAY ? Math.max(1, Math.round(DAY / this.step)) : 0;
  }

  private phase(ts: number): [number, number] {
    const dp = this.dayPhases();
    const hod = dp ? Math.floor((((ts % DAY) + DAY) % DAY) / this.step) % dp : 0;
    const dow = this.step <= DAY ? (((Math.floor(ts / DAY) + 4) % 7) + 7) % 7 : 0;
    return [hod, dow];
  }

  private transform(v: number): number {
    return this.s.log ? Math.log(Math.max(v, this.s.floor)) : v;
  }

  private inverse(y: number): number {
    return this.s.log ? Math.exp(y) : y;
  }

  /** Judges one point (timestamps must increase; a repeated or older timestamp is ignored with judged=false). */
  push(ts: number, value: number): Judgement {
    const s = this.s;
    const last = this.lastTimestamp;
    if (last !== null && ts <= last) return this.unjudged(ts, value, 'not after the previous point: ignored');
    if (!Number.isFinite(value)) return this.unjudged(ts, value, 'not a number: ignored');
    s.seen++;
    if (!s.ready) {
      s.warm.push([ts, value]);
      if (this.warmEnough()) this.initialise();
      return this.unjudged(ts, value, 'learning');
    }
    return this.judgeAndLearn(ts, value);
  }

  private unjudged(ts: number, value: number, why: string): Judgement {
    return { ts, value, judged: false, expected: null, lower: null, upper: null, z: 0, score: 0, anomaly: false, direction: null, explanation: why };
  }

  private warmEnough(): boolean {
    const w = this.s.warm;
    if (w.length < 10) return false;
    if (this.s.opts.stepMs === null) this.s.opts.stepMs = typicalStep(w.map((p) => p[0]));
    const step = this.step;
    const need = this.s.opts.warmupMs ?? (step < DAY ? 14 * DAY : step <= DAY ? 28 * DAY : 10 * step);
    return w[w.length - 1]![0] - w[0]![0] >= need - step;
  }

  private initialise(): void {
    const s = this.s;
    const w = s.warm;
    const values = w.map((p) => p[1]);
    const positive = values.every((v) => v > 0);
    s.log = positive;
    s.floor = positive ? Math.max(1e-9, median(values) * 1e-3) : 0;
    const ys = values.map((v) => this.transform(v));
    const phases = w.map((p) => this.phase(p[0]));
    const dp = this.dayPhases();
    const useWeek = this.step <= DAY;
    s.day = new Array(dp).fill(0);
    s.week = new Array(useWeek ? 7 : 0).fill(0);
    const t0 = w[0]![0];
    const tMid = (t0 + w[w.length - 1]![0]) / 2;
    let level = median(ys);
    let slope = 0; // per ms
    for (let iter = 0; iter < 3; iter++) {
      const deseason = ys.map((y, i) => y - (dp ? s.day[phases[i]![0]]! : 0) - (useWeek ? s.week[phases[i]![1]]! : 0));
      // Trend: Theil–Sen slope over per-day medians (robust to a bad day).
      const byDay = new Map<number, number[]>();
      deseason.forEach((y, i) => {
        const d = Math.floor(w[i]![0] / DAY);
        (byDay.get(d) ?? byDay.set(d, []).get(d)!).push(y);
      });
      const days = [...byDay.entries()].map(([d, ys2]) => [d * DAY + DAY / 2, median(ys2)] as const);
      const slopes: number[] = [];
      for (let i = 0; i < days.length; i++) for (let j = i + 1; j < days.length; j++) slopes.push((days[j]![1] - days[i]![1]) / (days[j]![0] - days[i]![0]));
      slope = slopes.length >= 3 && w[w.length - 1]![0] - t0 >= 2 * WEEK ? median(slopes) : 0;
      level = median(deseason.map((y, i) => y - slope * (w[i]![0] - tMid)));
      const base = ys.map((y, i) => y - level - slope * (w[i]![0] - tMid));
      if (dp) {
        const buckets: number[][] = Array.from({ length: dp }, () => []);
        base.forEach((b, i) => buckets[phases[i]![0]]!.push(b - (useWeek ? s.week[phases[i]![1]]! : 0)));
        s.day = buckets.map((b) => (b.length ? median(b) : 0));
        center(s.day);
      }
      if (useWeek) {
        const buckets: number[][] = Array.from({ length: 7 }, () => []);
        base.forEach((b, i) => buckets[phases[i]![1]]!.push(b - (dp ? s.day[phases[i]![0]]! : 0)));
        s.week = buckets.map((b) => (b.length ? median(b) : 0));
        center(s.week);
      }
    }
    s.trend = slope * this.step;
    s.level = level + slope * (t0 - tMid) - s.trend;
    s.lastTs = t0 - this.step;
    const fitted = ys.map((y, i) => y - (level + slope * (w[i]![0] - tMid)) - (dp ? s.day[phases[i]![0]]! : 0) - (useWeek ? s.week[phases[i]![1]]! : 0));
    // Warm-up residuals are in-sample (the profile was fitted on them): inflate them by the degrees of freedom used.
    const used = 2 + Math.max(0, dp - 1) + (useWeek ? 6 : 0);
    const inflate = Math.sqrt(w.length / Math.max(1, w.length - used));
    s.resid = fitted.map((r) => r * inflate).slice(-SCALE_WINDOW);
    s.ready = true;
    const warm = s.warm;
    s.warm = [];
    // Burn-in: run the filter over the warm-up points so level and profile are current (no verdicts kept; their
    // residuals are in-sample, so the scale keeps the inflated fit residuals instead).
    const resid = s.resid;
    for (const [ts, v] of warm) this.judgeAndLearn(ts, v);
    s.resid = resid;
    s.recentZ = [];
    s.frozen = 0;
  }

  /**
   * Scale of one-step residuals: winsorised RMS (at 3 MADs; ~90 % efficient, still robust) with a small-sample
   * allowance, so a short history does not make the monitor overconfident.
   */
  private sigma(pred: number): number {
    const rs = this.s.resid;
    const mad = madSigma(rs, 0);
    const cap = (3 * mad) ** 2;
    let ss = 0;
    for (const r of rs) ss += Math.min(r * r, cap);
    const raw = Math.sqrt(ss / Math.max(1, rs.length) / 0.9707) * (1 + 1 / Math.sqrt(Math.max(1, rs.length)));
    const floor = this.s.log ? 1e-3 : 1e-3 * Math.max(Math.abs(pred), 1e-9);
    return Math.max(raw, floor);
  }

  private judgeAndLearn(ts: number, value: number): Judgement {
    const s = this.s;
    const o = s.opts;
    const k = Math.max(1, Math.round((ts - (s.lastTs ?? ts - this.step)) / this.step));
    const [hod, dow] = this.phase(ts);
    const seasonal = (s.day.length ? s.day[hod]! : 0) + (s.week.length ? s.week[dow]! : 0);
    const levelPred = s.level + k * s.trend;
    const pred = levelPred + seasonal;
    const y = this.transform(value);
    const r = y - pred;
    const sigma = this.sigma(pred);
    const z = r / sigma;

    // Evidence over the last 1, 2, 3 points: a run counts only while every point in it leans the same way.
    const zs = [z, ...s.recentZ];
    let evidence = 0;
    let sign = Math.sign(z);
    for (let n = 1; n <= 3 && n <= zs.length; n++) {
      const run = zs.slice(0, n);
      if (n > 1 && !run.every((v) => Math.sign(v) === Math.sign(z) && Math.abs(v) >= 1.5)) break;
      const capped = run.reduce((a, v) => a + Math.max(-o.thresholds[0], Math.min(o.thresholds[0], v)), 0);
      const e = Math.abs(capped) / Math.sqrt(n) / o.thresholds[n - 1]!;
      if (e > evidence) {
        evidence = e;
        sign = Math.sign(capped);
      }
    }
    const anomaly = evidence >= 1;
    const score = evidence ** 2 / (evidence ** 2 + 1);
    const direction: Direction | null = anomaly ? (sign < 0 ? 'drop' : 'spike') : null;
    const expected = this.inverse(pred);
    const lower = this.inverse(pred - 3 * sigma);
    const upper = this.inverse(pred + 3 * sigma);

    s.recentZ = [z, ...s.recentZ].slice(0, 2);
    // Learn: never from an anomalous point (unless the anomaly lasts long enough to be the new normal), and then
    // only from its clipped residual, so one outlier cannot drag the level or the profile.
    const freezeMax = o.freezeMaxPoints || Math.max(3, this.dayPhases() || 3);
    if (anomaly && s.frozen < freezeMax) {
      s.frozen++;
      s.level = levelPred;
    } else {
      s.frozen = anomaly ? s.frozen : 0;
      const rc = Math.max(-CLIP * sigma, Math.min(CLIP * sigma, r));
      s.level = levelPred + o.alpha * rc;
      s.trend += o.beta * rc;
      if (s.day.length) s.day[hod]! += o.gammaDay * rc;
      if (s.week.length) s.week[dow]! += o.gammaWeek * rc;
      if (s.day.length && hod === 0) s.level += center(s.day);
      if (s.week.length && dow === 0 && hod === 0) s.level += center(s.week);
      s.resid.push(rc === r ? r : Math.sign(r) * CLIP * 1.5 * sigma);
      if (s.resid.length > SCALE_WINDOW) s.resid.splice(0, s.resid.length - SCALE_WINDOW);
    }
    s.lastTs = ts;

    const pct = expected !== 0 ? ((value - expected) / Math.abs(expected)) * 100 : 0;
    const explanation = anomaly
      ? `${direction}: observed ${fmt(value)}, expected ${fmt(expected)} (normal range ${fmt(lower)}–${fmt(upper)}), ${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%, z=${z.toFixed(1)}`
      : `normal: observed ${fmt(value)}, expected ${fmt(expected)} (normal range ${fmt(lower)}–${fmt(upper)})`;
    return { ts, value, judged: true, expected, lower, upper, z, score, anomaly, direction, explanation };
  }
}

function center(xs: number[]): number {
  if (!xs.length) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  for (let i = 0; i < xs.length; i++) xs[i]! -= m;
  return m;
}

const fmt = (v: number | null) => (v === null ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

export interface CrashEvent {
  onset: number;
  detectedAt: number;
  direction: Direction;
  score: number;
  explanation: string;
}

/**
 * Turns verdicts into incidents: an incident is confirmed when `confirm` of the last 3 judged points are anomalies in
 * the same direction; its onset is the first point of that run (stepping back over points that already leaned the same
 * way, |z| ≥ 2, at most 3). It ends after `quiet` normal points in a row.
 */
export interface TrackerState {
  recent: Judgement[];
  openSince: CrashEvent | null;
  quietRun: number;
}

/** What the state store keeps per monitored series: the monitor and its incident tracker. */
export interface MonitorSnapshot {
  monitor: MonitorState;
  tracker: TrackerState;
}

export class CrashTracker {
  private recent: Judgement[] = [];
  private openSince: CrashEvent | null = null;
  private quietRun = 0;

  toJSON(): TrackerState {
    return structuredClone({ recent: this.recent, openSince: this.openSince, quietRun: this.quietRun });
  }

  restore(s: TrackerState): this {
    this.recent = structuredClone(s.recent);
    this.openSince = structuredClone(s.openSince);
    this.quietRun = s.quietRun;
    return this;
  }

  constructor(
    private readonly directions: Direction[] = ['drop'],
    private readonly confirm = 2,
    private readonly quiet = 6,
  ) {}

  get open(): CrashEvent | null {
    return this.openSince;
  }

  /** Returns a CrashEvent when this judgement confirms a new incident, 'ended' when an open one ends, else null. */
  push(j: Judgement): CrashEvent | 'ended' | null {
    if (!j.judged) return null;
    this.recent.push(j);
    if (this.recent.length > 8) this.recent.shift();
    if (this.openSince) {
      this.quietRun = j.anomaly ? 0 : this.quietRun + 1;
      if (this.quietRun >= this.quiet) {
        this.openSince = null;
        return 'ended';
      }
      return null;
    }
    if (!j.anomaly || !j.direction || !this.directions.includes(j.direction)) return null;
    const last3 = this.recent.slice(-3);
    const same = last3.filter((x) => x.anomaly && x.direction === j.direction);
    if (same.length < Math.min(this.confirm, 3)) return null;
    let i = this.recent.length - 3 + last3.indexOf(same[0]!);
    const sgn = j.direction === 'drop' ? -1 : 1;
    for (let back = 0; back < 3 && i > 0 && sgn * this.recent[i - 1]!.z >= 2; back++) i--;
    this.openSince = { onset: this.recent[i]!.ts, detectedAt: j.ts, direction: j.direction, score: j.score, explanation: j.explanation };
    this.quietRun = 0;
    return this.openSince;
  }
}

/** Scores a whole series offline (still online: each point judged on the points before it). */
export function monitorSeries(points: ReadonlyArray<{ ts: number; value: number }>, opts: MonitorOptions = {}): Judgement[] {
  const m = new StreamingMonitor(opts);
  return points.map((p) => m.push(p.ts, p.value));
}

/** The onset of the first confirmed incident in a series (drops by default), or null. */
export function detectOnset(points: ReadonlyArray<{ ts: number; value: number }>, opts: MonitorOptions & { directions?: Direction[] } = {}): CrashEvent | null {
  const m = new StreamingMonitor(opts);
  const tracker = new CrashTracker(opts.directions ?? ['drop', 'spike']);
  for (const p of points) {
    const ev = tracker.push(m.push(p.ts, p.value));
    if (ev && ev !== 'ended') return ev;
  }
  return null;
}
