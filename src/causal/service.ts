// The causal engine as a service over its store: points in → monitor → incidents (with ranked candidates and the
// impact so far); changes in → risk; impact reports for the HTTP API and the CLI.
import { ChangeError, normaliseChange, type Change, type ChangeInput } from './changes.js';
import { estimateImpact, ImpactError, type ImpactResult, type Interval, type PointEffect } from './impact.js';
import { CrashTracker, StreamingMonitor, detectOnset, type Judgement } from './monitor.js';
import { classifyRisk, createLlmClassifier, type LlmConfig, type RiskAssessment, type RiskConfig } from './risk.js';
import { DEFAULT_LOOKBACK_MS, rankCandidates, type Candidate } from './rootcause.js';
import { typicalStep } from './stats.js';
import type { AppScope, CausalStore, Incident, StoredPoint } from './store.js';
import { randomUUID } from 'node:crypto';
import { SerialPerKey } from '../util/serial-per-key.js';

export interface CausalServiceOptions {
  store: CausalStore;
  now?: () => number;
  risk?: RiskConfig;
  /** When set, changes are classified by this OpenAI-compatible model (rules on timeout or error). */
  llm?: LlmConfig | null;
  lookbackMs?: number;
  /** Optional logger for background failures (LLM classification). */
  log?: { warn(obj: object, msg: string): void };
}

/** `{platform: 'android'}` → `platform=android`; keys sorted; '' when none. */
export function segmentKey(labels: Record<string, string> | null | undefined): string {
  if (!labels) return '';
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

export function segmentLabels(segment: string): Record<string, string> | string | null {
  if (!segment) return null;
  if (!segment.includes('=')) return segment;
  return Object.fromEntries(segment.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

export interface ImpactReport {
  onset: string;
  end: string;
  effect: { cumulative: Interval; average: Interval; relative: Interval; pointwise: PointEffect[] };
  candidates: Array<{ change: unknown; score: number; reasons: string[] }>;
}

export interface ImpactReportInput {
  points: ReadonlyArray<{ ts: number; value: number }>;
  /** Onset (ms) or 'auto' (the first confirmed incident the monitor finds). */
  at: number | 'auto';
  end?: number | null;
  controls?: { names: string[]; rows: ReadonlyArray<{ ts: number; values: number[] }> };
  /** Changes as given (echoed back) with their normalised form (ranked). */
  changes?: ReadonlyArray<{ echo: unknown; change: Change }>;
  segment?: string | Record<string, string> | null;
  metric?: string;
  lookbackMs?: number;
  /** How much history before the onset the counterfactual learns from (the model's default when absent). */
  preWindowMs?: number;
  risk?: RiskConfig;
  seed?: number;
}

/** The impact answer of `causality impact --json` and `POST /v1/impact`, plus the full model result. */
export function impactReport(input: ImpactReportInput): { report: ImpactReport; result: ImpactResult } {
  const pts = [...input.points].sort((a, b) => a.ts - b.ts).filter((p, i, a) => i === 0 || p.ts !== a[i - 1]!.ts);
  if (pts.length < 10) throw new ImpactError('need at least 10 points');
  let onset: number;
  if (input.at === 'auto') {
    const found = detectOnset(pts);
    if (!found) throw new ImpactError('no confirmed drop or spike found in the series; pass the onset explicitly');
    onset = found.onset;
  } else onset = input.at;
  let controls: { names: string[]; values: number[][] } | undefined;
  if (input.controls && input.controls.names.length) {
    const byTs = new Map(input.controls.rows.map((r) => [r.ts, r.values]));
    controls = { names: input.controls.names, values: input.controls.names.map((_, j) => pts.map((p) => byTs.get(p.ts)?.[j] ?? NaN)) };
  }
  const result = estimateImpact({ ts: pts.map((p) => p.ts), values: pts.map((p) => p.value), onset, end: input.end ?? null, controls, seed: input.seed, preWindowMs: input.preWindowMs });
  const bucketMs = typicalStep(pts.map((p) => p.ts));
  const ranked = rankCandidates(
    (input.changes ?? []).map((c) => c.change),
    { onset: Date.parse(result.onset), bucketMs, lookbackMs: input.lookbackMs, segment: input.segment ?? null, metric: input.metric },
    { risk: input.risk },
  );
  const echoOf = new Map((input.changes ?? []).map((c) => [c.change.id, c.echo]));
  return {
    report: {
      onset: result.onset,
      end: result.end,
      effect: result.effect,
      candidates: ranked.map((c) => ({ change: echoOf.get(c.change.id) ?? c.change, score: c.score, reasons: c.reasons })),
    },
    result,
  };
}

export class CausalService {
  private readonly store: CausalStore;
  private readonly now: () => number;
  private readonly llmClassify: ((c: Change) => Promise<RiskAssessment>) | null;
  /** A segment's monitor state is read-modify-write: one update at a time per segment. */
  private readonly perSegment = new SerialPerKey();

  constructor(private readonly opts: CausalServiceOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.llmClassify = opts.llm ? createLlmClassifier(opts.llm, opts.risk) : null;
  }

  /** Stores a change (idempotent on its id within the app) with its rule risk; the model, if any, refines it later. */
  async addChange(appId: AppScope, input: ChangeInput): Promise<{ change: Change; created: boolean; classified?: Promise<void> }> {
    const change = normaliseChange(input, appId, this.now());
    change.risk = classifyRisk(change, this.opts.risk);
    const r = await this.store.insertChange(change);
    if (!r.created || !this.llmClassify) return r;
    const classified = this.llmClassify(change)
      .then((risk) => this.store.setChangeRisk(appId, change.id, risk))
      .catch((e: Error) => this.opts.log?.warn({ err: e, change: change.id }, 'change classification failed'));
    return { ...r, classified };
  }

  /** Changes an incident of `appId` may be caused by: the app's own and admin-wide ones. */
  private async changesFor(appId: AppScope, from: number, to: number): Promise<Change[]> {
    const own = await this.store.listChanges({ appId, from, to });
    return appId === null ? own : [...own, ...(await this.store.listChanges({ appId: null, from, to }))];
  }

  /** Stores points and runs the monitor of every touched segment over what it has not seen yet. */
  async ingestPoints(appId: AppScope, series: string, points: readonly StoredPoint[]): Promise<{ stored: number; opened: Incident[]; resolved: Incident[] }> {
    const stored = await this.store.upsertPoints(appId, series, points);
    const opened: Incident[] = [];
    const resolved: Incident[] = [];
    for (const segment of new Set(points.map((p) => p.segment))) {
      const r = await this.perSegment.run(`${appId ?? ''}\u0000${series}\u0000${segment}`, () => this.monitorSegment(appId, series, segment));
      opened.push(...r.opened);
      resolved.push(...r.resolved);
    }
    return { stored, opened, resolved };
  }

  private async monitorSegment(appId: AppScope, series: string, segment: string): Promise<{ opened: Incident[]; resolved: Incident[] }> {
    const snap = await this.store.loadMonitor(appId, series, segment);
    const monitor = snap ? StreamingMonitor.fromJSON(snap.monitor) : new StreamingMonitor();
    const tracker = new CrashTracker();
    if (snap) tracker.restore(snap.tracker);
    const last = monitor.lastTimestamp;
    const fresh = await this.store.readPoints(appId, series, { segment, from: last === null ? undefined : last + 1 });
    const opened: Incident[] = [];
    const resolved: Incident[] = [];
    for (const p of fresh) {
      const j: Judgement = monitor.push(p.ts, p.value);
      const ev = tracker.push(j);
      if (ev === 'ended') {
        const open = await this.store.findOpenIncident(appId, series, segment);
        if (open) {
          await this.store.updateIncident(open.id, { status: 'resolved', resolvedAt: new Date(p.ts).toISOString() });
          resolved.push((await this.analyseIncident(open.id))!);
        }
      } else if (ev) {
        const incident: Incident = {
          id: randomUUID(),
          appId,
          series,
          segment,
          direction: ev.direction,
          onset: new Date(ev.onset).toISOString(),
          detectedAt: new Date(ev.detectedAt).toISOString(),
          status: 'open',
          resolvedAt: null,
          score: ev.score,
          explanation: ev.explanation,
          candidates: [],
          impact: null,
        };
        await this.store.insertIncident(incident);
        opened.push((await this.analyseIncident(incident.id))!);
      }
    }
    if (fresh.length) await this.store.saveMonitor(appId, series, segment, { monitor: monitor.toJSON(), tracker: tracker.toJSON() });
    return { opened, resolved };
  }

  /** (Re)computes an incident's ranked candidates and its impact so far. */
  async analyseIncident(id: string): Promise<Incident | null> {
    const inc = await this.store.getIncident(id);
    if (!inc) return null;
    const onset = Date.parse(inc.onset);
    const lookback = this.opts.lookbackMs ?? DEFAULT_LOOKBACK_MS;
    const points = await this.store.readPoints(inc.appId, inc.series, { segment: inc.segment });
    const bucketMs = typicalStep(points.map((p) => p.ts));
    const candidates: Candidate[] = rankCandidates(await this.changesFor(inc.appId, onset - lookback, onset + bucketMs), {
      onset,
      bucketMs,
      lookbackMs: lookback,
      segment: segmentLabels(inc.segment),
      metric: inc.series,
    }, { risk: this.opts.risk });
    let impact: ImpactResult | null = null;
    try {
      // The end is the model's own (the series back inside its counterfactual band), not when the monitor went quiet.
      impact = estimateImpact({ ts: points.map((p) => p.ts), values: points.map((p) => p.value), onset, end: null, draws: 500 });
    } catch (e) {
      if (!(e instanceof ImpactError)) throw e;
    }
    await this.store.updateIncident(id, { candidates, impact });
    return this.store.getIncident(id);
  }
}

export { ChangeError };
