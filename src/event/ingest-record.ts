// What ingest appends to the bus: one record per accepted request, `<header JSON>\n<request body as received>`.
// Storing the body's own bytes keeps the hot path to validation only (no per-event re-serialisation); consumers
// (warehouse sink, detectors) rebuild each stored event with the same code and the request facts kept in the header.
import { createHash } from 'node:crypto';
import { buildStoredEvent, checkEvent, skewCorrectedTimestamp, type RequestFacts } from './envelope.js';
import type { StoredEvent } from './stored-event.js';
import { isObject } from './object.js';
import { SEGMENT_TYPES, segmentToEnvelope, type SegmentType } from './segment.js';
import { parseUserAgent } from './user-agent.js';
import { copyBytes } from '../util/bytes.js';

export { isObject };

/** Our routes, and Segment's (`segment:batch` for /v1/batch, `segment:<type>` for /v1/<type>). */
export type IngestRoute = 'ingest' | 'batch' | 'collect' | 'segment:batch' | `segment:${SegmentType}`;

export const SEGMENT_ROUTES: ReadonlyArray<{ path: string; route: IngestRoute }> = [
  { path: '/v1/batch', route: 'segment:batch' },
  ...SEGMENT_TYPES.map((t) => ({ path: `/v1/${t}`, route: `segment:${t}` as IngestRoute })),
];

const segmentTypeOf = (route: IngestRoute): SegmentType | null => (route.startsWith('segment:') && route !== 'segment:batch' ? (route.slice(8) as SegmentType) : null);

export interface IngestHeader {
  v: 1;
  route: IngestRoute;
  receivedAt: number;
  /** The app the API key is bound to; null for the admin key. */
  keyAppId: string | null;
  ipHash: string | null;
  userAgent: string | null;
  /** Per event of the body, in order: its event id when appended, null when rejected or a duplicate. */
  ids: Array<string | null>;
  /** Per event, its app, when the admin key sent it (app keys write their own app only). */
  apps?: Array<string | null>;
}

const NEWLINE = 0x0a;

/** The events a request body holds, per route; null when the body has no event list of the expected shape. */
export function eventsOfBody(route: IngestRoute, body: unknown): unknown[] | null {
  if (route === 'ingest') return isObject(body) ? [isObject(body.event) ? body.event : body] : null;
  if (route === 'batch') {
    const events = Array.isArray(body) ? body : isObject(body) ? body.events ?? body.batch : undefined;
    return Array.isArray(events) ? events : null;
  }
  if (route === 'segment:batch') return isObject(body) && Array.isArray(body.batch) ? body.batch : null;
  if (route.startsWith('segment:')) return isObject(body) ? [body] : null;
  if (Array.isArray(body)) return body;
  return isObject(body) && Array.isArray(body.events) ? body.events : [body];
}

/** Seed 003's collect body → our flat envelope. Its anonymous visitor has no device id: one is derived per site/IP/UA. */
export function collectToEnvelope(body: unknown, facts: RequestFacts): unknown {
  if (!isObject(body)) return body;
  const { site_id, event_name, url, referrer, user_id, session_id, ts, props, device_id, anonymous_id, ...rest } = body;
  const anon =
    device_id ??
    anonymous_id ??
    'anon-' +
      createHash('sha256')
        .update(`${String(site_id ?? facts.appId)}|${facts.ipHash ?? ''}|${facts.userAgent ?? ''}`)
        .digest('hex')
        .slice(0, 16);
  const envelope: Record<string, unknown> = {
    ...rest,
    appId: site_id,
    deviceId: anon,
    type: event_name ?? 'pageview',
    timestamp: ts,
    url,
    referrer,
    userId: user_id,
    sessionId: session_id,
  };
  if (props !== undefined) envelope.properties = props;
  for (const k of Object.keys(envelope)) if (envelope[k] === undefined) delete envelope[k];
  return envelope;
}

/** The client envelopes of a body, in order (collect and Segment bodies mapped onto the envelope; clock skew corrected). */
export function envelopesOfBody(route: IngestRoute, body: unknown, facts: RequestFacts): unknown[] | null {
  const events = eventsOfBody(route, body);
  if (!events) return null;
  if (route === 'collect') return events.map((e) => collectToEnvelope(e, facts));
  const sentAt = isObject(body) ? body.sentAt : undefined;
  if (route.startsWith('segment:')) return events.map((e) => segmentToEnvelope(e, segmentTypeOf(route), sentAt, facts.receivedAt));
  if (route === 'batch' && sentAt !== undefined) {
    return events.map((e) => (isObject(e) && e.timestamp != null ? { ...e, timestamp: skewCorrectedTimestamp(e.timestamp, sentAt, facts.receivedAt) } : e));
  }
  return events;
}

export function factsOfHeader(h: IngestHeader): RequestFacts {
  return {
    appId: h.keyAppId,
    receivedAt: h.receivedAt,
    userAgent: h.userAgent,
    ipHash: h.ipHash,
    ua: h.userAgent ? parseUserAgent(h.userAgent) : null,
  };
}

/**
 * The header line of a record whose event ids are `width`-byte ASCII slices of `ids`, event i appended when
 * `appended(i)`: the bytes of `JSON.stringify({ ...fields, ids }) + '\n'`, written without a string per event (on the
 * ingest loop, building and serialising 100 id strings a request was most of its garbage).
 */
export function encodeIngestHeaderLine(
  fields: Omit<IngestHeader, 'ids'>,
  ids: Buffer,
  width: number,
  count: number,
  appended: (i: number) => boolean,
): Buffer {
  const head = JSON.stringify(fields); // ends with its closing brace, replaced by the ids
  let n = 0;
  for (let i = 0; i < count; i++) if (appended(i)) n++;
  const size = Buffer.byteLength(head) - 1 + IDS_OPEN.length + n * (width + 2) + (count - n) * 4 + Math.max(0, count - 1) + IDS_CLOSE.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'utf8') - 1;
  at += out.write(IDS_OPEN, at, 'latin1');
  for (let i = 0; i < count; i++) {
    if (i > 0) out[at++] = 0x2c; // ,
    if (appended(i)) {
      out[at++] = 0x22; // "
      at += copyBytes(ids, i * width, (i + 1) * width, out, at);
      out[at++] = 0x22;
    } else at += out.write('null', at, 'latin1');
  }
  out.write(IDS_CLOSE, at, 'latin1');
  return out;
}
const IDS_OPEN = ',"ids":[';
const IDS_CLOSE = ']}\n';

/** A whole record (ingest appends the header line and the body as two parts: encodeIngestHeaderLine). */
export function encodeIngestRecord(header: IngestHeader, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]);
}

/** The (app, event id) pairs a record appended, from its header alone (dedupe warm-up). */
export function appendedIds(h: IngestHeader): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < h.ids.length; i++) {
    const id = h.ids[i];
    const app = h.apps?.[i] ?? h.keyAppId;
    if (id && app) out.push([app, id]);
  }
  return out;
}

/** The header alone (cheap: dedupe warm-up reads only this). */
export function decodeIngestHeader(payload: Buffer): IngestHeader {
  const nl = payload.indexOf(NEWLINE);
  return JSON.parse(payload.subarray(0, nl < 0 ? payload.length : nl).toString('utf8')) as IngestHeader;
}

export interface DecodedRecord {
  header: IngestHeader;
  events: StoredEvent[];
  /** Events the header says were appended but that no longer validate (never expected; counted, not thrown). */
  unbuildable: number;
}

/** Rebuilds the stored events of one ingest record. */
export function decodeIngestRecord(payload: Buffer): DecodedRecord {
  const nl = payload.indexOf(NEWLINE);
  const header = JSON.parse(payload.subarray(0, nl).toString('utf8')) as IngestHeader;
  const facts = factsOfHeader(header);
  const envelopes = envelopesOfBody(header.route, JSON.parse(payload.subarray(nl + 1).toString('utf8')), facts) ?? [];
  const events: StoredEvent[] = [];
  let unbuildable = 0;
  for (let i = 0; i < header.ids.length; i++) {
    const eventId = header.ids[i];
    if (!eventId) continue;
    const c = checkEvent(envelopes[i], facts, true);
    if (!c.ok) {
      unbuildable++;
      continue;
    }
    events.push(buildStoredEvent(c.event, facts, eventId));
  }
  return { header, events, unbuildable };
}
