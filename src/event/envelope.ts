// The event envelope clients send, its validation (zod is the single source of truth) and its
// normalisation into a StoredEvent. Accepts seed 000's nested shape ({"appId","deviceId","screenView":{…}})
// and a flat one ({"type":"screenView","appId",…}); unknown fields are kept in `props`, never dropped.
import { z } from 'zod';
import { v5 as uuidv5, v7 as uuidv7 } from 'uuid';
import { compileFastCheck } from './fast-check.js';
import type { StoredEvent } from './stored-event.js';
import { parseUserAgent, type UaFacts } from './user-agent.js';

export type { UaFacts };

const UUID_NAMESPACE = '5b1f9a7e-6a38-4c1e-9d51-0c7a3f0e2b44';
const MIN_TS = Date.UTC(2000, 0, 1);
const MAX_FUTURE_MS = 7 * 24 * 3600 * 1000;

/** Any 8-4-4-4-12 hex id is stored as a UUID (DuckDB's UUID type takes every version). A loop: this is per event. */
function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false;
  }
  return true;
}

export const APP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const id = (max: number) => z.string().min(1).max(max).regex(/\S/, 'must not be blank');
const optText = (max = 256) => z.string().max(max).nullish();
const money = z.number().finite().min(0).max(1e12);
const currency = z.string().regex(/^[A-Za-z]{3}$/, 'must be a 3-letter ISO 4217 code');

/** Timestamp: ISO 8601 string or epoch milliseconds (number or digit string). */
export const timestampSchema = z.union([z.number(), z.string().min(1).max(64)]);

export const contextSchema = z.object({
  appVersion: optText(64),
  appBuild: z.union([z.string().max(64), z.number()]).nullish(),
  platform: optText(32),
  os: optText(64),
  osVersion: optText(64),
  deviceModel: optText(128),
  deviceType: optText(32),
  locale: optText(35),
  userAgent: optText(1024),
  networkType: optText(32),
  /** UTM values when the page URL does not carry them (Segment's context.campaign). */
  campaign: z
    .object({ source: optText(), medium: optText(), campaign: optText(), term: optText(), content: optText() })
    .nullish(),
});

// Typed fields per kind (seed 000). Zod keeps the known fields; every other field of the input goes to props.
export const KIND_SCHEMAS = {
  screenView: z.object({ screenName: id(256), previousScreen: optText() }),
  screenExit: z.object({ screenName: id(256), durationMs: z.number().int().min(0).nullish() }),
  buttonTap: z.object({ buttonId: id(256), screenName: optText() }),
  userLogin: z.object({ userId: optText(), method: optText(64), success: z.boolean().nullish() }),
  userLogout: z.object({ userId: optText() }),
  productView: z.object({ productId: id(256), price: money.nullish(), currency: currency.nullish() }),
  addToCart: z.object({
    productId: id(256),
    quantity: z.number().int().min(1).max(1e6).nullish(),
    price: money.nullish(),
    currency: currency.nullish(),
  }),
  purchaseComplete: z.object({
    orderId: optText(),
    totalAmount: money.nullish(),
    price: money.nullish(),
    currency: currency.nullish(),
    itemCount: z.number().int().min(0).max(1e6).nullish(),
  }),
  appStart: z.object({ coldStart: z.boolean().nullish() }),
  appBackground: z.object({}),
  appForeground: z.object({}),
  networkChange: z.object({ networkType: id(32) }),
  customEvent: z.object({ name: optText(128), params: z.record(z.string(), z.unknown()).nullish() }),
} as const;

export type KnownKind = keyof typeof KIND_SCHEMAS;
export const KNOWN_KINDS = Object.keys(KIND_SCHEMAS) as KnownKind[];
const KIND_SET: ReadonlySet<string> = new Set(KNOWN_KINDS);
const isKnownKind = (k: string): k is KnownKind => Object.prototype.hasOwnProperty.call(KIND_SCHEMAS, k);

export const envelopeSchema = z.object({
  eventId: z.string().min(1).max(128).nullish(),
  appId: z.string().regex(APP_ID_PATTERN, 'must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit').nullish(),
  deviceId: id(256),
  userId: optText(),
  sessionId: optText(),
  type: z.string().min(1).max(128).regex(/^[^\u0000-\u001f]+$/, 'must not contain control characters').nullish(),
  timestamp: timestampSchema.nullish(),
  context: contextSchema.nullish(),
  properties: z.record(z.string(), z.unknown()).nullish(),
  props: z.record(z.string(), z.unknown()).nullish(),
  // Web fields, also accepted at the top level of an event.
  url: optText(2048),
  referrer: optText(2048),
});

const fastEnvelope = compileFastCheck(envelopeSchema);
const fastKind = Object.fromEntries(KNOWN_KINDS.map((k) => [k, compileFastCheck(KIND_SCHEMAS[k])])) as Record<KnownKind, (v: unknown) => boolean>;

const ENVELOPE_KEYS = new Set([
  'eventId', 'appId', 'deviceId', 'userId', 'sessionId', 'type', 'timestamp', 'context', 'properties', 'props',
  'url', 'referrer', 'appVersion', 'appBuild', 'platform', 'os', 'osVersion', 'deviceModel', 'locale',
]);
const CONTEXT_KEYS = new Set(Object.keys(contextSchema.shape));

/** What the edge knows about the request an event came in (filled by the ingest hooks). */
export interface RequestFacts {
  appId: string | null; // the app the API key is bound to; null for the admin key
  receivedAt: number;
  userAgent: string | null;
  ipHash: string | null;
  /** UA-derived fields, used where the client context did not say. */
  ua: UaFacts | null;
}


export interface FieldError {
  code: 'invalid_field' | 'missing_field' | 'forbidden_app';
  field: string;
  message: string;
}

export type Normalized = { ok: true; event: StoredEvent } | { ok: false; error: FieldError };

export function fieldErrorFromZod(err: z.ZodError, prefix = ''): FieldError {
  const issue = err.issues[0]!;
  const field = [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(event)';
  const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
  return { code: missing ? 'missing_field' : 'invalid_field', field, message: missing ? 'is required' : issue.message };
}

/** Parses a client timestamp to epoch ms; null when absent; an error string when unusable. */
export function parseTimestamp(v: unknown, now: number): number | null | string {
  if (v === undefined || v === null) return null;
  let ms: number;
  if (typeof v === 'number') ms = v;
  else if (typeof v === 'string' && /^\d+$/.test(v)) ms = Number(v);
  else if (typeof v === 'string') ms = Date.parse(v);
  else return 'must be an ISO 8601 string or epoch milliseconds';
  if (!Number.isFinite(ms)) return 'must be an ISO 8601 string or epoch milliseconds';
  if (ms < MIN_TS) return 'is before 2000-01-01: epoch milliseconds expected (seconds given?)';
  if (ms > now + MAX_FUTURE_MS) return 'is more than 7 days in the future';
  return Math.round(ms);
}

/**
 * Clock-skew correction (as Segment does it): a device's clock may be off, so when the client says when it sent the
 * request (`sentAt`, by the same clock as its event times), the event time is shifted by receive time − sentAt.
 * Unusable values are left as they are, for the envelope check to judge.
 */
export function skewCorrectedTimestamp(ts: unknown, sentAt: unknown, receivedAt: number): unknown {
  if (ts === undefined || ts === null || sentAt === undefined || sentAt === null) return ts ?? undefined;
  const at = parseTimestamp(ts, Number.MAX_SAFE_INTEGER);
  const sent = parseTimestamp(sentAt, Number.MAX_SAFE_INTEGER);
  if (typeof at !== 'number' || typeof sent !== 'number') return ts;
  return at + (receivedAt - sent);
}

/** Maps any client id to a UUID: UUIDs pass through (lower-cased), others get a stable UUIDv5 per app. */
export function toEventUuid(appId: string, clientId: string | null | undefined): string {
  if (!clientId) return uuidv7();
  if (isUuid(clientId)) return clientId.toLowerCase();
  return uuidv5(`${appId}\u0000${clientId}`, UUID_NAMESPACE);
}

const str = (v: unknown): string | null => (v === undefined || v === null || v === '' ? null : String(v));
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function pickKind(raw: Record<string, unknown>): { kind: string; body: Record<string, unknown> } | FieldError {
  const declared = typeof raw.type === 'string' ? raw.type.trim() : null;
  // Nested shape: exactly one known-kind key holding an object.
  let nestedKind: KnownKind | null = null;
  // The event's own keys (a handful) are walked rather than the 13 kinds: this runs for every event.
  for (const k in raw) {
    const v = raw[k];
    if (KIND_SET.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      if (nestedKind) return { code: 'invalid_field', field: k, message: `only one event kind per event (also got ${nestedKind})` };
      nestedKind = k as KnownKind;
    }
  }
  if (nestedKind) {
    if (declared && declared !== nestedKind) {
      return { code: 'invalid_field', field: 'type', message: `says ${declared} but the event carries ${nestedKind}` };
    }
    return { kind: nestedKind, body: raw[nestedKind] as Record<string, unknown> };
  }
  if (!declared) {
    return { code: 'missing_field', field: 'type', message: `is required (or one of ${KNOWN_KINDS.join(', ')} as an object)` };
  }
  // Flat shape: typed fields may sit at the top level or under properties/props.
  const body: Record<string, unknown> = { ...(raw.properties as object | undefined), ...(raw.props as object | undefined) };
  for (const [k, v] of Object.entries(raw)) if (!ENVELOPE_KEYS.has(k)) body[k] = v;
  return { kind: declared, body };
}

/** A client event that passed validation: what building its stored shape needs. */
export interface CheckedEvent {
  raw: Record<string, unknown>;
  env: z.infer<typeof envelopeSchema>;
  appId: string;
  kind: string;
  isNested: boolean;
  /** The kind's fields as the client sent them (typed fields and any others). */
  body: Record<string, unknown>;
  /** The kind's known fields, validated. */
  typed: Record<string, unknown>;
  ts: number | null;
}

export type Checked = { ok: true; event: CheckedEvent } | { ok: false; error: FieldError };

/**
 * Validates one client event (the ingest hot path: no stored shape is built). Never throws for bad input.
 * Consumers rebuilding events that ingest already checked pass `trusted` (schema checks skipped, the rest identical).
 */
export function checkEvent(input: unknown, facts: RequestFacts, trusted = false): Checked {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, error: { code: 'invalid_field', field: '(event)', message: 'must be a JSON object' } };
  }
  const raw = input as Record<string, unknown>;
  let env = raw as z.infer<typeof envelopeSchema>;
  if (!trusted && !fastEnvelope(input)) {
    const parsed = envelopeSchema.safeParse(input);
    if (!parsed.success) return { ok: false, error: fieldErrorFromZod(parsed.error) };
    env = parsed.data;
  }

  const appId = env.appId ?? facts.appId;
  if (!appId) return { ok: false, error: { code: 'missing_field', field: 'appId', message: 'is required with the admin key' } };
  if (facts.appId && appId !== facts.appId) {
    return { ok: false, error: { code: 'forbidden_app', field: 'appId', message: `this API key writes to app ${facts.appId} only` } };
  }

  const picked = pickKind(raw);
  if ('code' in picked) return { ok: false, error: picked };
  const { kind, body } = picked;
  const isNested = isKnownKind(kind) && raw[kind] !== undefined;

  let typed: Record<string, unknown> = body;
  if (!trusted && isKnownKind(kind) && !fastKind[kind](body)) {
    const r = KIND_SCHEMAS[kind].safeParse(body);
    if (!r.success) return { ok: false, error: fieldErrorFromZod(r.error, isNested ? kind : '') };
    typed = r.data as Record<string, unknown>;
  }

  const ts = parseTimestamp(env.timestamp, facts.receivedAt);
  if (typeof ts === 'string') return { ok: false, error: { code: 'invalid_field', field: 'timestamp', message: ts } };
  return { ok: true, event: { raw, env, appId, kind, isNested, body, typed, ts } };
}

/** Validates one client event and builds its stored shape (`eventId` overrides the id, as recorded at ingest). */
export function normalizeEvent(input: unknown, facts: RequestFacts, eventId?: string): Normalized {
  const c = checkEvent(input, facts);
  if (!c.ok) return c;
  return { ok: true, event: buildStoredEvent(c.event, facts, eventId) };
}

/** The event id a checked event gets: the client's (mapped to a UUID) or a new UUIDv7. */
export const eventIdOf = (c: CheckedEvent): string => toEventUuid(c.appId, c.env.eventId);

export function buildStoredEvent(c: CheckedEvent, facts: RequestFacts, eventId?: string): StoredEvent {
  const { raw, env, appId, kind, isNested, body, typed, ts } = c;
  // Zod returns only the fields it knows; props are built from the raw input so nothing else is lost.
  const ctx = (env.context ?? {}) as Record<string, unknown>;
  const rawCtx = (raw.context ?? {}) as Record<string, unknown>;
  const ctxVal = (k: string) => ctx[k] ?? raw[k];
  // A user agent in the event's context (a mobile SDK relaying its webview's) beats the request's.
  const ua = typeof ctx.userAgent === 'string' && ctx.userAgent ? parseUserAgent(ctx.userAgent) : facts.ua;

  // props: the client's properties, unknown top-level fields, unknown kind fields, unknown context fields.
  const props: Record<string, unknown> = {};
  if (isNested) {
    Object.assign(props, raw.properties ?? {}, raw.props ?? {});
    for (const k in raw) if (!ENVELOPE_KEYS.has(k) && !isKnownKind(k)) props[k] = raw[k];
  }
  const consumed = CONSUMED_KIND_FIELDS[kind] ?? EMPTY;
  for (const k in body) if (!consumed.has(k)) props[k] = body[k];
  if (kind === 'customEvent' && body.params && typeof body.params === 'object') {
    delete props.params;
    Object.assign(props, body.params as object);
  }
  for (const k in rawCtx) if (!CONTEXT_KEYS.has(k)) props[`context.${k}`] = rawCtx[k];
  if (env.eventId && !isUuid(env.eventId)) props.$client_event_id = env.eventId;

  const url = str(env.url ?? typed.url);
  const campaign = env.context?.campaign;
  const web = url ? parseWebUrl(url) : null;
  const receivedAt = facts.receivedAt;

  return {
    event_id: eventId ?? toEventUuid(appId, env.eventId),
    app_id: appId,
    device_id: env.deviceId,
    user_id: str(env.userId ?? typed.userId),
    session_id: str(env.sessionId),
    type: kind,
    ts: ts ?? receivedAt,
    received_at: receivedAt,
    screen_name: str(typed.screenName),
    button_id: str(typed.buttonId),
    product_id: str(typed.productId),
    order_id: str(typed.orderId),
    price: num(typed.totalAmount) ?? num(typed.price),
    currency: typeof typed.currency === 'string' ? typed.currency.toUpperCase() : null,
    quantity: num(typed.quantity) ?? num(typed.itemCount),
    duration_ms: num(typed.durationMs),
    network_type: str(typed.networkType ?? ctx.networkType),
    success: typeof typed.success === 'boolean' ? typed.success : null,
    url,
    path: web?.path ?? null,
    referrer: str(env.referrer ?? typed.referrer),
    utm_source: web?.utm.source ?? str(campaign?.source),
    utm_medium: web?.utm.medium ?? str(campaign?.medium),
    utm_campaign: web?.utm.campaign ?? str(campaign?.campaign),
    utm_term: web?.utm.term ?? str(campaign?.term),
    utm_content: web?.utm.content ?? str(campaign?.content),
    app_version: str(ctxVal('appVersion')),
    app_build: str(ctxVal('appBuild')),
    platform: str(ctxVal('platform')),
    os: str(ctxVal('os')) ?? ua?.os ?? null,
    os_version: str(ctxVal('osVersion')) ?? ua?.osVersion ?? null,
    device_model: str(ctxVal('deviceModel')) ?? ua?.deviceModel ?? null,
    device_type: str(ctx.deviceType) ?? ua?.deviceType ?? null,
    browser: ua?.browser ?? null,
    browser_version: ua?.browserVersion ?? null,
    locale: str(ctxVal('locale')),
    ip_hash: facts.ipHash,
    props: JSON.stringify(props),
  };
}

const EMPTY: ReadonlySet<string> = new Set();
// Kind fields that became columns (the rest of the kind's body goes to props).
const CONSUMED_KIND_FIELDS: Record<string, ReadonlySet<string>> = {
  screenView: new Set(['screenName']),
  screenExit: new Set(['screenName', 'durationMs']),
  buttonTap: new Set(['buttonId', 'screenName']),
  userLogin: new Set(['userId', 'success']),
  userLogout: new Set(['userId']),
  productView: new Set(['productId', 'price', 'currency']),
  addToCart: new Set(['productId', 'quantity', 'price', 'currency']),
  purchaseComplete: new Set(['orderId', 'totalAmount', 'price', 'currency', 'itemCount']),
  networkChange: new Set(['networkType']),
  customEvent: new Set([]),
};

export interface WebUrl {
  path: string;
  utm: { source: string | null; medium: string | null; campaign: string | null; term: string | null; content: string | null };
}

/** Path and UTM parameters of a page URL; null when it is not a URL. */
export function parseWebUrl(url: string): WebUrl | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.startsWith('/') ? { path: url.split(/[?#]/)[0]!, utm: { source: null, medium: null, campaign: null, term: null, content: null } } : null;
  }
  const q = u.searchParams;
  return {
    path: u.pathname || '/',
    utm: {
      source: q.get('utm_source'),
      medium: q.get('utm_medium'),
      campaign: q.get('utm_campaign'),
      term: q.get('utm_term'),
      content: q.get('utm_content'),
    },
  };
}
