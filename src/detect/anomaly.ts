// What a detector raises: an anomaly about one entity (device, user, session or IP) of one app, with a score, a
// severity, the model or rule that raised it, a sentence a person can read, and the events that triggered it.
import { createHash } from 'node:crypto';

export type EntityType = 'device' | 'user' | 'session' | 'ip';
export const ENTITY_TYPES: readonly EntityType[] = ['device', 'user', 'session', 'ip'];
export type Severity = 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];
export const severityRank = (s: Severity): number => SEVERITIES.indexOf(s);
export type AnomalyStatus = 'open' | 'acknowledged' | 'resolved';
export const ANOMALY_STATUSES: readonly AnomalyStatus[] = ['open', 'acknowledged', 'resolved'];

export interface Anomaly {
  /** Deterministic from source + app + entity + window start, so a replay of the same events dedupes. */
  id: string;
  appId: string;
  entityType: EntityType;
  entityId: string;
  deviceId: string | null;
  userId: string | null;
  sessionId: string | null;
  ipHash: string | null;
  /** Event time of the triggering event (epoch ms). */
  ts: number;
  /** In [0, 1]: how far past its threshold the observation is. */
  score: number;
  severity: Severity;
  /** `model:<name>` or `rule:<id>`. */
  source: string;
  /** What kind of abuse the source indicates (brute_force, account_takeover, modified_client, …). */
  category: string;
  /** Expected vs observed, in words. */
  explanation: string;
  eventIds: string[];
  /** Machine-readable numbers behind the explanation. */
  details: Record<string, unknown>;
}

/** UUID-shaped (v5 layout) id from the anomaly's identity. */
export function anomalyId(source: string, appId: string, entityType: EntityType, entityId: string, windowStart: number): string {
  const h = createHash('sha1').update(`${source}\u0000${appId}\u0000${entityType}\u0000${entityId}\u0000${windowStart}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Short form of a probability for explanations: 0.0003, 2.1e-6. */
export function fmtP(p: number): string {
  if (p >= 0.001) return p.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
  return p.toExponential(1);
}

export function fmtDuration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
