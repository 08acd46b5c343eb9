// Rules compiled to closures, and their per-key state: sliding windows (count, sum, distinct), sequences (A then B
// within T) and absences (B without a prior A). Event time only (never the wall clock); state is plain data so the
// engine snapshots it; windows and sequence marks of idle keys are evicted.
import { EVENT_COLUMNS, type StoredEvent } from '../event/stored-event.js';
import { fmtDuration, type EntityType, type Severity } from './anomaly.js';
import { RuleError, type Condition, type FieldTest, type RuleKey, type RuleSpec } from './rules-schema.js';
import { SCORE_NAMES, type ModelScores } from './scores.js';

/** What a rule sees of an event. */
export interface EventView {
  ev: StoredEvent;
  scores: ModelScores;
  /** The event's props, parsed on first use. */
  props(): Record<string, unknown>;
  country: string | null;
}

type Getter = (v: EventView) => unknown;
export type Pred = (v: EventView) => boolean;

const COLUMN_SET: ReadonlySet<string> = new Set(EVENT_COLUMNS.map((c) => c.name));
const SCORE_SET: ReadonlySet<string> = new Set(SCORE_NAMES);
const KEY_FIELD: Record<RuleKey, keyof StoredEvent> = { ip: 'ip_hash', device: 'device_id', user: 'user_id', session: 'session_id' };
const KEY_ENTITY: Record<RuleKey, EntityType> = { ip: 'ip', device: 'device', user: 'user', session: 'session' };

function getter(field: string, where: string): Getter {
  if (COLUMN_SET.has(field)) {
    const k = field as keyof StoredEvent;
    return (v) => v.ev[k];
  }
  if (field.startsWith('props.') && field.length > 6) {
    const k = field.slice(6);
    return (v) => v.props()[k];
  }
  if (field.startsWith('model.')) {
    const k = field.slice(6);
    if (!SCORE_SET.has(k)) throw new RuleError(where, field, `unknown model score (known: ${SCORE_NAMES.join(', ')})`);
    const s = k as keyof ModelScores;
    return (v) => v.scores[s];
  }
  if (field === 'country') return (v) => v.country;
  if (field === 'hour') return (v) => new Date(v.ev.ts).getUTCHours();
  throw new RuleError(where, field, 'unknown field: use an event column (type, price, success, …), props.<name>, model.<score>, country or hour');
}

function test(t: FieldTest, field: string, where: string): (x: unknown) => boolean {
  if (t === null || typeof t !== 'object') return (x) => x === t || (t === null && x === undefined);
  const parts: Array<(x: unknown) => boolean> = [];
  if (t.eq !== undefined) parts.push((x) => x === t.eq);
  if (t.ne !== undefined) parts.push((x) => x !== t.ne);
  if (t.in) {
    const s = new Set(t.in);
    parts.push((x) => s.has(x as string));
  }
  if (t.notIn) {
    const s = new Set(t.notIn);
    parts.push((x) => !s.has(x as string));
  }
  const num = (x: unknown) => (typeof x === 'number' ? x : NaN);
  if (t.gt !== undefined) parts.push((x) => num(x) > t.gt!);
  if (t.gte !== undefined) parts.push((x) => num(x) >= t.gte!);
  if (t.lt !== undefined) parts.push((x) => num(x) < t.lt!);
  if (t.lte !== undefined) parts.push((x) => num(x) <= t.lte!);
  if (t.exists !== undefined) parts.push((x) => (x !== null && x !== undefined) === t.exists);
  if (t.matches !== undefined) {
    let re: RegExp;
    try {
      re = new RegExp(t.matches);
    } catch (err) {
      throw new RuleError(where, `${field}.matches`, (err as Error).message);
    }
    parts.push((x) => typeof x === 'string' && re.test(x));
  }
  return parts.length === 1 ? parts[0]! : (x) => parts.every((p) => p(x));
}

/** Compiles a condition; `type` is tested first (the cheapest and most selective). */
export function compileCondition(c: Condition, where: string): Pred {
  const fields = Object.keys(c).sort((a, b) => (a === 'type' ? -1 : b === 'type' ? 1 : 0));
  const checks = fields.map((f) => {
    const g = getter(f, `${where}.${f}`);
    const t = test(c[f]!, f, where);
    return (v: EventView) => t(g(v));
  });
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  if (checks.length === 2) {
    const [a, b] = checks as [Pred, Pred];
    return (v) => a(v) && b(v);
  }
  return (v) => {
    for (const p of checks) if (!p(v)) return false;
    return true;
  };
}

export function describeCondition(c: Condition): string {
  return Object.entries(c)
    .map(([f, t]) => {
      if (t === null || typeof t !== 'object') return `${f}=${String(t)}`;
      return Object.entries(t)
        .map(([op, v]) => `${f} ${{ eq: '=', ne: '≠', in: 'in', notIn: 'not in', gt: '>', gte: '≥', lt: '<', lte: '≤', exists: 'exists:', matches: '~' }[op]} ${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}`)
        .join(', ');
    })
    .join(', ');
}

export interface CompiledRule {
  spec: RuleSpec;
  id: string;
  source: string;
  kind: RuleSpec['kind'];
  severity: Severity;
  category: string;
  entityType: EntityType;
  keyField: keyof StoredEvent;
  apps: ReadonlySet<string> | null;
  cooldownMs: number;
  where: Pred | null;
  // window
  windowMs: number;
  agg: 'count' | 'sum' | 'distinct';
  aggField: Getter | null;
  aggName: string;
  threshold: number;
  // sequence / absence
  first: Pred | null;
  then: Pred | null;
  withinMs: number;
  text: { where: string; first: string; then: string };
}

/** Compiles validated specs (throws RuleError for unknown fields or bad regexes). Disabled rules are left out. */
export function compileRules(specs: readonly RuleSpec[], file = '(rules)'): CompiledRule[] {
  const out: CompiledRule[] = [];
  for (const s of specs) {
    if (!s.enabled) continue;
    const where = `${file}: ${s.id}`;
    const r: CompiledRule = {
      spec: s,
      id: s.id,
      source: `rule:${s.id}`,
      kind: s.kind,
      severity: s.severity as Severity,
      category: s.category,
      entityType: KEY_ENTITY[s.key],
      keyField: KEY_FIELD[s.key],
      apps: s.apps ? new Set(s.apps) : null,
      cooldownMs: s.cooldown ?? (s.kind === 'window' ? s.window : 30 * 60_000),
      where: null,
      windowMs: 0,
      agg: 'count',
      aggField: null,
      aggName: '',
      threshold: 0,
      first: null,
      then: null,
      withinMs: Infinity,
      text: { where: '', first: '', then: '' },
    };
    if (s.kind === 'event') {
      r.where = compileCondition(s.where, `${where}.where`);
      r.text.where = describeCondition(s.where);
    } else if (s.kind === 'window') {
      r.where = s.where ? compileCondition(s.where, `${where}.where`) : null;
      r.text.where = s.where ? describeCondition(s.where) : 'any event';
      r.windowMs = s.window;
      r.threshold = s.threshold;
      if (s.aggregate === 'count') r.agg = 'count';
      else if ('sum' in s.aggregate) {
        r.agg = 'sum';
        r.aggName = s.aggregate.sum;
        r.aggField = getter(s.aggregate.sum, `${where}.aggregate.sum`);
      } else {
        r.agg = 'distinct';
        r.aggName = s.aggregate.distinct;
        r.aggField = getter(s.aggregate.distinct, `${where}.aggregate.distinct`);
      }
    } else if (s.kind === 'sequence') {
      r.first = compileCondition(s.first, `${where}.first`);
      r.then = compileCondition(s.then, `${where}.then`);
      r.withinMs = s.within;
      r.text.first = describeCondition(s.first);
      r.text.then = describeCondition(s.then);
    } else {
      r.then = compileCondition(s.event, `${where}.event`);
      r.first = compileCondition(s.without, `${where}.without`);
      r.withinMs = s.within ?? Infinity;
      r.text.first = describeCondition(s.without);
      r.text.then = describeCondition(s.event);
    }
    out.push(r);
  }
  return out;
}

// ---- state -------------------------------------------------------------------------------------------------------

export interface WindowState {
  ts: number[];
  ids: string[];
  vals: Array<number | string | null>;
  head: number;
  sum: number;
  distinct: Map<string, number> | null;
  last: number;
}

export interface MarkState {
  ts: number;
  id: string;
  note: string;
}

export interface RuleState {
  windows: Map<string, Map<string, WindowState>>;
  marks: Map<string, Map<string, MarkState>>;
}

export const newRuleState = (): RuleState => ({ windows: new Map(), marks: new Map() });

/** What a rule decided for an event: nothing, or the facts the engine turns into an anomaly. */
export interface RuleHit {
  rule: CompiledRule;
  entityId: string;
  windowStart: number;
  score: number;
  explanation: string;
  eventIds: string[];
  details: Record<string, unknown>;
}

const MAX_EVIDENCE = 200;
const SEVERITY_SCORE: Record<Severity, number> = { low: 0.4, medium: 0.6, high: 0.8, critical: 0.95 };

function stateMap<T>(m: Map<string, Map<string, T>>, id: string): Map<string, T> {
  let s = m.get(id);
  if (!s) m.set(id, (s = new Map()));
  return s;
}

/** Pushes a matching event into a rule's window for its key and returns the aggregate. */
function windowPush(w: WindowState, r: CompiledRule, ev: StoredEvent, val: number | string | null): number {
  w.ts.push(ev.ts);
  w.ids.push(ev.event_id);
  w.last = ev.ts;
  if (r.agg !== 'count') {
    w.vals.push(val);
    if (r.agg === 'sum' && typeof val === 'number') w.sum += val;
    if (r.agg === 'distinct' && val !== null) w.distinct!.set(String(val), (w.distinct!.get(String(val)) ?? 0) + 1);
  }
  const from = ev.ts - r.windowMs;
  while (w.head < w.ts.length && w.ts[w.head]! <= from) {
    if (r.agg !== 'count') {
      const old = w.vals[w.head]!;
      if (r.agg === 'sum' && typeof old === 'number') w.sum -= old;
      if (r.agg === 'distinct' && old !== null) {
        const k = String(old);
        const n = w.distinct!.get(k)! - 1;
        if (n <= 0) w.distinct!.delete(k);
        else w.distinct!.set(k, n);
      }
    }
    w.head++;
  }
  if (w.head > 64 && w.head * 2 > w.ts.length) {
    w.ts = w.ts.slice(w.head);
    w.ids = w.ids.slice(w.head);
    if (r.agg !== 'count') w.vals = w.vals.slice(w.head);
    w.head = 0;
  }
  return r.agg === 'count' ? w.ts.length - w.head : r.agg === 'sum' ? w.sum : w.distinct!.size;
}

/**
 * Runs one rule over one event, updating its state; returns a hit when it fires. `suppressed(key)` tells whether the
 * entity is in its cool-down (then the state still learns but nothing is built).
 */
export function evaluateRule(r: CompiledRule, v: EventView, state: RuleState, suppressed: (r: CompiledRule, entityId: string) => boolean): RuleHit | null {
  const ev = v.ev;
  if (r.apps && !r.apps.has(ev.app_id)) return null;
  const keyVal = ev[r.keyField] as string | null;
  if (keyVal === null || keyVal === undefined) return null;
  if (r.kind === 'event') {
    if (!r.where!(v) || suppressed(r, keyVal)) return null;
    return {
      rule: r,
      entityId: keyVal,
      windowStart: ev.ts,
      score: r.spec.score ?? SEVERITY_SCORE[r.severity],
      explanation: `${ev.type} matched ${r.text.where}`,
      eventIds: [ev.event_id],
      details: {},
    };
  }
  const stateKey = `${ev.app_id}\u0001${keyVal}`;
  if (r.kind === 'window') {
    if (r.where && !r.where(v)) return null;
    const windows = stateMap(state.windows, r.id);
    let w = windows.get(stateKey);
    if (!w) {
      w = { ts: [], ids: [], vals: [], head: 0, sum: 0, distinct: r.agg === 'distinct' ? new Map() : null, last: ev.ts };
      windows.set(stateKey, w);
    }
    const raw = r.aggField ? r.aggField(v) : null;
    const val = raw === undefined || raw === null ? null : typeof raw === 'number' ? raw : String(raw);
    const value = windowPush(w, r, ev, val);
    if (value < r.threshold || suppressed(r, keyVal)) return null;
    const n = w.ts.length - w.head;
    const first = w.ts[w.head]!;
    const what =
      r.agg === 'count'
        ? `${n} events (${r.text.where})`
        : r.agg === 'sum'
          ? `sum of ${r.aggName} ${Math.round(value * 100) / 100} over ${n} events (${r.text.where})`
          : `${value} distinct ${r.aggName} over ${n} events (${r.text.where})`;
    return {
      rule: r,
      entityId: keyVal,
      windowStart: first,
      score: r.spec.score ?? Math.min(1, 0.5 + 0.5 * (1 - r.threshold / Math.max(value, r.threshold))),
      explanation: `${what} from ${r.entityType} ${keyVal} in ${fmtDuration(ev.ts - first)} (window ${fmtDuration(r.windowMs)}); expected fewer than ${r.threshold}`,
      eventIds: w.ids.slice(Math.max(w.head, w.ids.length - MAX_EVIDENCE)),
      details: { value, threshold: r.threshold, windowMs: r.windowMs, events: n, aggregate: r.agg, field: r.aggName || undefined },
    };
  }
  const marks = stateMap(state.marks, r.id);
  if (r.kind === 'sequence') {
    let hit: RuleHit | null = null;
    if (r.then!(v)) {
      const m = marks.get(stateKey);
      if (m && ev.ts - m.ts <= r.withinMs && !suppressed(r, keyVal)) {
        hit = {
          rule: r,
          entityId: keyVal,
          windowStart: m.ts,
          score: r.spec.score ?? SEVERITY_SCORE[r.severity],
          explanation: `${m.note}, then ${ev.type} (${r.text.then}) ${fmtDuration(ev.ts - m.ts)} later; expected no such sequence within ${fmtDuration(r.withinMs)}`,
          eventIds: [m.id, ev.event_id],
          details: { firstTs: m.ts, gapMs: ev.ts - m.ts, withinMs: r.withinMs },
        };
      }
    }
    if (r.first!(v)) marks.set(stateKey, { ts: ev.ts, id: ev.event_id, note: describeMark(v, r.text.first) });
    return hit;
  }
  // absence: B without a prior A
  let hit: RuleHit | null = null;
  if (r.then!(v)) {
    const m = marks.get(stateKey);
    if ((!m || ev.ts - m.ts > r.withinMs) && !suppressed(r, keyVal)) {
      hit = {
        rule: r,
        entityId: keyVal,
        windowStart: ev.ts,
        score: r.spec.score ?? SEVERITY_SCORE[r.severity],
        explanation: `${ev.type} (${r.text.then}) by ${r.entityType} ${keyVal} with no prior ${r.text.first}${
          m ? ` in the last ${fmtDuration(r.withinMs)} (last one ${fmtDuration(ev.ts - m.ts)} ago)` : Number.isFinite(r.withinMs) ? ` in the last ${fmtDuration(r.withinMs)}` : ' ever'
        }`,
        eventIds: [ev.event_id],
        details: { lastPriorTs: m?.ts ?? null, withinMs: Number.isFinite(r.withinMs) ? r.withinMs : null },
      };
    }
  }
  if (r.first!(v)) {
    const m = marks.get(stateKey);
    if (m) {
      m.ts = ev.ts;
      m.id = ev.event_id;
    } else marks.set(stateKey, { ts: ev.ts, id: ev.event_id, note: '' });
  }
  return hit;
}

function describeMark(v: EventView, cond: string): string {
  const ev = v.ev;
  const bits = [`${ev.type} (${cond}) at ${new Date(ev.ts).toISOString()}`];
  if (v.scores.novelty > 0) bits.push(`novelty ${v.scores.novelty.toFixed(2)}`);
  if (v.country) bits.push(`country ${v.country}`);
  bits.push(`device ${ev.device_id}`);
  return bits.join(', ');
}

/** Drops windows and marks no rule can use any more (idle past their window / within). */
export function evictRuleState(state: RuleState, rules: readonly CompiledRule[], now: number): number {
  let dropped = 0;
  const byId = new Map(rules.map((r) => [r.id, r]));
  for (const [id, m] of state.windows) {
    const r = byId.get(id);
    if (!r) {
      dropped += m.size;
      state.windows.delete(id);
      continue;
    }
    for (const [k, w] of m) if (w.last <= now - r.windowMs) (m.delete(k), dropped++);
  }
  for (const [id, m] of state.marks) {
    const r = byId.get(id);
    if (!r) {
      dropped += m.size;
      state.marks.delete(id);
      continue;
    }
    // "Ever" is bounded too: marks older than 90 days are forgotten.
    const horizon = Number.isFinite(r.withinMs) ? r.withinMs : 90 * 86_400_000;
    for (const [k, mk] of m) if (mk.ts <= now - horizon) (m.delete(k), dropped++);
  }
  return dropped;
}
