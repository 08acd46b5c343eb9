// Root-cause candidates for an incident: the changes in a lookback window before the onset, ranked by timing (closer
// before the onset ranks higher; a change after the onset cannot be the cause, except inside the first affected
// bucket, which covers a stretch of time), risk, and overlap with the incident's segment and component.
import type { Change } from './changes.js';
import { classifyRisk, componentOf, type RiskAssessment, type RiskConfig } from './risk.js';

export interface IncidentScope {
  /** First affected point (ms). */
  onset: number;
  /** Width of one point of the series (a change inside the first affected bucket is still a candidate). */
  bucketMs?: number;
  /** Default 3 days. */
  lookbackMs?: number;
  /** Segment labels of the affected series (e.g. {platform: 'android'} or 'android'). */
  segment?: string | Record<string, string> | null;
  /** Metric name and component hints (e.g. 'checkout_revenue', ['payments']). */
  metric?: string;
  components?: string[];
}

export interface Candidate {
  change: Change;
  score: number;
  reasons: string[];
}

export const DEFAULT_LOOKBACK_MS = 3 * 86_400_000;
const TIMING_HALF_LIFE_MS = 6 * 3_600_000;
const PLATFORMS = new Set(['android', 'ios', 'web', 'windows', 'macos', 'linux', 'desktop', 'mobile']);
const STOP = new Set(['the', 'and', 'for', 'with', 'from', 'into', 'value', 'count', 'total', 'sum', 'rate', 'metric', 'platform', 'segment', 'src', 'app', 'lib']);

const tokens = (s: string) =>
  s
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .map((t) => (t.length > 4 && !PLATFORMS.has(t) ? t.replace(/s$/, '') : t))
    .filter((t) => t.length >= 3 && !STOP.has(t));

function scopeTokens(scope: IncidentScope): Set<string> {
  const seg = scope.segment;
  const parts = typeof seg === 'string' ? [seg] : seg ? Object.values(seg) : [];
  return new Set([...parts, ...(scope.components ?? []), scope.metric ?? ''].flatMap(tokens));
}

function segmentTokens(scope: IncidentScope): Set<string> {
  const seg = scope.segment;
  const parts = typeof seg === 'string' ? [seg] : seg ? Object.values(seg) : [];
  return new Set(parts.flatMap(tokens));
}

const fmtGap = (ms: number) => (ms < 3_600_000 ? `${Math.round(ms / 60_000)} min` : ms < 2 * 86_400_000 ? `${(ms / 3_600_000).toFixed(1)} h` : `${(ms / 86_400_000).toFixed(1)} days`);

/** Ranks the admissible changes, best first. `riskOf` defaults to the rule classifier (or the change's stored risk). */
export function rankCandidates(changes: readonly Change[], scope: IncidentScope, opts: { risk?: RiskConfig; riskOf?: (c: Change) => RiskAssessment } = {}): Candidate[] {
  const lookback = scope.lookbackMs ?? DEFAULT_LOOKBACK_MS;
  const bucket = scope.bucketMs ?? 0;
  const wanted = scopeTokens(scope);
  const segTokens = segmentTokens(scope);
  const segPlatforms = [...segTokens].filter((t) => PLATFORMS.has(t));
  const out: Candidate[] = [];
  for (const change of changes) {
    const t = Date.parse(change.time);
    if (!(t >= scope.onset - lookback && t < scope.onset + Math.max(bucket, 1))) continue;
    const reasons: string[] = [];
    // Inside the first affected bucket the change is as far from the bucket's start as it is after it.
    const gap = Math.abs(scope.onset - t);
    const timing = 1 / (1 + gap / TIMING_HALF_LIFE_MS);
    reasons.push(t >= scope.onset ? `within the first affected interval (${fmtGap(t - scope.onset)} after its start)` : `${fmtGap(gap)} before the onset`);

    const risk = opts.riskOf?.(change) ?? change.risk ?? classifyRisk(change, opts.risk);
    // A change that touches only docs or tests (rule points ≤ −2) can hardly break a metric.
    const riskScore = risk.level === 'HIGH' ? 1 : risk.level === 'MEDIUM' ? 0.5 : (risk.points ?? 0) <= -2 ? 0.02 : 0.15;
    reasons.push(`risk ${risk.level}${risk.reasons.length ? ` (${risk.reasons.slice(0, 2).join('; ')})` : ''}`);

    const component = risk.component ?? componentOf(change, opts.risk).component;
    const changeTokens = new Set(
      [component ?? '', change.component ?? '', change.service ?? '', change.title, ...change.segments, ...change.paths.flatMap((p) => p.split('/').slice(0, 3))].flatMap(tokens),
    );
    const shared = [...wanted].filter((w) => changeTokens.has(w));
    const changePlatforms = [...changeTokens].filter((w) => PLATFORMS.has(w));
    // Overlap is graded: the incident's segment and its component each count; a change that explicitly targets
    // another platform than the affected segment is penalised (a crash only on Android ranks Android changes first).
    let overlap = 0.5;
    let mismatch = false;
    if (segPlatforms.length && changePlatforms.length && !changePlatforms.some((p) => segPlatforms.includes(p))) {
      mismatch = true;
      overlap = 0;
      reasons.push(`targets ${changePlatforms.join('/')}, the incident is on ${segPlatforms.join('/')}`);
    } else if (shared.length) {
      const segHit = shared.filter((x) => segTokens.has(x));
      const compHit = shared.filter((x) => !segTokens.has(x));
      overlap = 0.5 + (segHit.length ? 0.25 : 0) + (compHit.length ? 0.25 : 0);
      if (segHit.length) reasons.push(`matches the incident's segment: ${segHit.slice(0, 3).join(', ')}`);
      if (compHit.length) reasons.push(`matches the incident's component: ${compHit.slice(0, 3).join(', ')}`);
    }
    const score = (0.45 * timing + 0.3 * riskScore + 0.25 * overlap) * (mismatch ? 0.5 : 1);
    out.push({ change: { ...change, risk }, score: Math.round(score * 1000) / 1000, reasons });
  }
  // Ties: the later change (closer to the onset) first, then by id for a stable order.
  return out.sort((a, b) => b.score - a.score || Date.parse(b.change.time) - Date.parse(a.change.time) || a.change.id.localeCompare(b.change.id));
}
