// Webhook endpoints: what a receiver asks for (URL, secret, format, filters on the anomaly), the pure rules deciding
// which anomaly goes where, how a delivery body is signed, and how long to wait before trying again. No I/O here.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ENTITY_TYPES, SEVERITIES, severityRank, type Anomaly, type EntityType, type Severity } from '../detect/anomaly.js';

export type AlertFormat = 'json' | 'slack';
export const ALERT_FORMATS: readonly AlertFormat[] = ['json', 'slack'];

export interface WebhookFilters {
  /** Only these apps (empty or absent: every app). */
  appIds?: string[];
  /** At least this severity. */
  minSeverity?: Severity;
  /** Exactly one of these severities. */
  severities?: Severity[];
  /** `model:<name>` / `rule:<id>`; a trailing `*` matches a prefix (`rule:*`). */
  sources?: string[];
  categories?: string[];
  entityTypes?: EntityType[];
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  secret: string;
  format: AlertFormat;
  filters: WebhookFilters;
  enabled: boolean;
  description: string | null;
  /** At most this many requests per minute to this endpoint, evenly spaced (Slack takes about 1/s); null = no cap. */
  maxPerMinute: number | null;
  /** `config`: defined in the config file (read-only over the API); `api`: created over HTTP. */
  origin: 'config' | 'api';
  createdAt: number;
  updatedAt: number;
}

export const ENDPOINT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http or https URL');

export const filtersSchema = z
  .object({
    appIds: z.array(z.string().min(1)).max(100).optional(),
    minSeverity: z.enum(SEVERITIES as [Severity, ...Severity[]]).optional(),
    severities: z.array(z.enum(SEVERITIES as [Severity, ...Severity[]])).max(4).optional(),
    sources: z.array(z.string().min(1).max(200)).max(100).optional(),
    categories: z.array(z.string().min(1).max(100)).max(100).optional(),
    entityTypes: z.array(z.enum(ENTITY_TYPES as [EntityType, ...EntityType[]])).max(4).optional(),
  })
  .strict();

/** An endpoint as written in the config file or POSTed (secret generated when absent). */
export const endpointInputSchema = z
  .object({
    id: z.string().regex(ENDPOINT_ID, 'must be 1-64 of A-Z a-z 0-9 . _ -').optional(),
    url: httpUrl,
    secret: z.string().min(16, 'at least 16 characters').max(256).optional(),
    format: z.enum(ALERT_FORMATS as [AlertFormat, ...AlertFormat[]]).default('json'),
    filters: filtersSchema.default({}),
    enabled: z.boolean().default(true),
    description: z.string().max(500).nullable().optional(),
    maxPerMinute: z.number().int().min(1).max(600_000).nullable().optional(),
  })
  .strict();
export type EndpointInput = z.input<typeof endpointInputSchema>;

/** PATCH: any subset. */
export const endpointPatchSchema = z
  .object({
    url: httpUrl.optional(),
    secret: z.string().min(16).max(256).optional(),
    format: z.enum(ALERT_FORMATS as [AlertFormat, ...AlertFormat[]]).optional(),
    filters: filtersSchema.optional(),
    enabled: z.boolean().optional(),
    description: z.string().max(500).nullable().optional(),
    maxPerMinute: z.number().int().min(1).max(600_000).nullable().optional(),
  })
  .strict();

export const newSecret = (): string => `whsec_${randomBytes(24).toString('base64url')}`;

const sourceMatches = (pattern: string, source: string) => (pattern.endsWith('*') ? source.startsWith(pattern.slice(0, -1)) : source === pattern);

/** Whether an anomaly passes an endpoint's filters (every given filter must pass). */
export function matchesFilters(f: WebhookFilters, a: Anomaly): boolean {
  if (f.appIds?.length && !f.appIds.includes(a.appId)) return false;
  if (f.minSeverity && severityRank(a.severity) < severityRank(f.minSeverity)) return false;
  if (f.severities?.length && !f.severities.includes(a.severity)) return false;
  if (f.sources?.length && !f.sources.some((p) => sourceMatches(p, a.source))) return false;
  if (f.categories?.length && !f.categories.includes(a.category)) return false;
  if (f.entityTypes?.length && !f.entityTypes.includes(a.entityType)) return false;
  return true;
}

/**
 * The grouping key: one alert stream per endpoint, app, entity and source. Every kind of anomaly (each model, each
 * rule) gets its own cool-down, so a flood from one rule never hides another rule's first alert for the same entity.
 */
export const groupKeyOf = (endpointId: string, a: Anomaly): string => `${endpointId}\u0000${a.appId}\u0000${a.entityType}\u0000${a.entityId}\u0000${a.source}`;

/** `sha256=<hex>` over `<timestamp>.<body>` (timestamp: Unix seconds, as sent in X-Causality-Timestamp). */
export function signDelivery(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Receiver side (tests, docs): checks the signature and that the timestamp is within `toleranceSec` of now. */
export function verifyDelivery(secret: string, headers: { signature?: string; timestamp?: string }, body: string, toleranceSec = 300, nowMs = Date.now()): boolean {
  const ts = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(ts) || Math.abs(nowMs / 1000 - ts) > toleranceSec) return false;
  const want = Buffer.from(signDelivery(secret, ts, body));
  const got = Buffer.from(headers.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** Exponential backoff with equal jitter: attempt 1 waits base·[0.5, 1), attempt k base·2^(k-1)·[0.5, 1), capped. */
export function backoffMs(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(p.maxMs, p.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** `Retry-After` as delta-seconds or an HTTP date → milliseconds from now (null when absent or unreadable). */
export function parseRetryAfter(v: string | null | undefined, nowMs = Date.now()): number | null {
  if (!v) return null;
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const t = Date.parse(s);
  return Number.isFinite(t) ? Math.max(0, t - nowMs) : null;
}
