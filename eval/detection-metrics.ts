// Scoring anomalies against generator labels, without the detectors ever seeing a label: an anomaly belongs to an
// attack when one of its triggering events is an attack event, or when it is about one of the attack's entities
// during the attack (+ grace). Everything else is a false positive, counted under the anomaly's category.
import type { Anomaly } from '../src/detect/anomaly.js';
import type { StoredEvent } from '../src/event/stored-event.js';
import { SCENARIOS, type Label, type Scenario } from '../src/generate/simulate.js';

export interface ScenarioRow {
  scenario: string;
  labels: number;
  detected: number;
  entityTp: number;
  entityFp: number;
  entityPrecision: number;
  entityRecall: number;
  entityF1: number;
  eventTp: number;
  eventFp: number;
  attackEvents: number;
  eventPrecision: number;
  eventRecall: number;
  eventF1: number;
  delayMedianMs: number | null;
  delayP90Ms: number | null;
}

export interface DetectionScores {
  rows: ScenarioRow[];
  overall: ScenarioRow;
  cleanEntities: number;
  cleanFlagged: number;
  cleanFpRate: number;
  cleanByType: Record<string, { entities: number; flagged: number }>;
  falsePositives: Array<{ entity: string; source: string; category: string; explanation: string }>;
  missed: Array<{ labelId: string; scenario: string; entity: string; details: unknown }>;
  bySource: Record<string, { tp: number; fp: number }>;
}

const GRACE_MS = 30 * 60_000;
const f1 = (p: number, r: number) => (p + r > 0 ? (2 * p * r) / (p + r) : 0);
const ratio = (a: number, b: number) => (b > 0 ? a / b : 1);
function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export function scoreDetection(labels: readonly Label[], anomalies: readonly Anomaly[], testEvents: readonly StoredEvent[]): DetectionScores {
  const byEvent = new Map<string, Label>();
  const byEntity = new Map<string, Label[]>();
  const labelled = new Set<string>();
  for (const l of labels) {
    for (const id of l.eventIds) byEvent.set(id, l);
    for (const e of [{ entityType: l.entityType, entityId: l.entityId }, ...l.related]) {
      const k = `${e.entityType}:${e.entityId}`;
      labelled.add(k);
      const list = byEntity.get(k) ?? [];
      list.push(l);
      byEntity.set(k, list);
    }
  }
  const attribute = (a: Anomaly): Label | null => {
    for (const id of a.eventIds) {
      const l = byEvent.get(id);
      if (l) return l;
    }
    for (const l of byEntity.get(`${a.entityType}:${a.entityId}`) ?? []) if (a.ts >= l.startTs && a.ts <= l.endTs + GRACE_MS) return l;
    return null;
  };

  const entityVerdict = new Map<string, { label: Label | null; category: string; a: Anomaly }>();
  const firstHit = new Map<Label, number>();
  const bySource: Record<string, { tp: number; fp: number }> = {};
  const flaggedEvents = new Map<string, string>(); // event id → category of an unattributed anomaly citing it
  for (const a of anomalies) {
    const l = attribute(a);
    const src = (bySource[a.source] ??= { tp: 0, fp: 0 });
    if (l) src.tp++;
    else src.fp++;
    if (l && (!firstHit.has(l) || a.ts < firstHit.get(l)!)) firstHit.set(l, a.ts);
    const k = `${a.entityType}:${a.entityId}`;
    const prev = entityVerdict.get(k);
    if (!prev || (!prev.label && l)) entityVerdict.set(k, { label: l, category: a.category, a });
    for (const id of a.eventIds) if (!flaggedEvents.has(id) || l) flaggedEvents.set(id, l ? '' : a.category);
  }

  const rowFor = (scenario: string, ls: readonly Label[]): ScenarioRow => {
    const set = new Set(ls);
    let tp = 0;
    let fp = 0;
    for (const v of entityVerdict.values()) {
      if (v.label && set.has(v.label)) tp++;
      else if (!v.label && (scenario === 'overall' || v.category === scenario)) fp++;
    }
    const detected = ls.filter((l) => firstHit.has(l));
    const attackEvents = new Set<string>();
    for (const l of ls) for (const id of l.eventIds) attackEvents.add(id);
    let eTp = 0;
    let eFp = 0;
    for (const [id, cat] of flaggedEvents) {
      if (attackEvents.has(id)) eTp++;
      else if (!byEvent.has(id) && cat !== '' && (scenario === 'overall' || cat === scenario)) eFp++;
    }
    const delays = detected.map((l) => firstHit.get(l)! - l.startTs);
    const p = ratio(tp, tp + fp);
    const r = ratio(detected.length, ls.length);
    const ep = ratio(eTp, eTp + eFp);
    const er = ratio(eTp, attackEvents.size);
    return {
      scenario,
      labels: ls.length,
      detected: detected.length,
      entityTp: tp,
      entityFp: fp,
      entityPrecision: p,
      entityRecall: r,
      entityF1: f1(p, r),
      eventTp: eTp,
      eventFp: eFp,
      attackEvents: attackEvents.size,
      eventPrecision: ep,
      eventRecall: er,
      eventF1: f1(ep, er),
      delayMedianMs: quantile(delays, 0.5),
      delayP90Ms: quantile(delays, 0.9),
    };
  };

  const rows = SCENARIOS.map((s: Scenario) => rowFor(s, labels.filter((l) => l.scenario === s)));
  const overall = rowFor('overall', labels);

  // Clean entities: every device, user, session and IP of the test period that no attack used.
  const clean = new Map<string, string>();
  for (const e of testEvents) {
    const keys: Array<[string, string | null]> = [
      ['device', e.device_id],
      ['user', e.user_id],
      ['session', e.session_id],
      ['ip', e.ip_hash],
    ];
    for (const [t, id] of keys) {
      if (id === null) continue;
      const k = `${t}:${id}`;
      if (!labelled.has(k)) clean.set(k, t);
    }
  }
  const cleanByType: Record<string, { entities: number; flagged: number }> = {};
  for (const t of clean.values()) (cleanByType[t] ??= { entities: 0, flagged: 0 }).entities++;
  let cleanFlagged = 0;
  const falsePositives: DetectionScores['falsePositives'] = [];
  for (const [k, v] of entityVerdict) {
    if (v.label) continue;
    falsePositives.push({ entity: k, source: v.a.source, category: v.category, explanation: v.a.explanation });
    const t = clean.get(k);
    if (t) {
      cleanFlagged++;
      cleanByType[t]!.flagged++;
    }
  }
  const missed = labels
    .filter((l) => !firstHit.has(l))
    .map((l) => ({ labelId: l.labelId, scenario: l.scenario, entity: `${l.entityType}:${l.entityId}`, details: { ...l.details, events: l.eventIds.length, spanMs: l.endTs - l.startTs } }));
  return { rows, overall, cleanEntities: clean.size, cleanFlagged, cleanFpRate: ratio(cleanFlagged, clean.size), cleanByType, falsePositives, missed, bySource };
}
