// Checks every event of a request body: the CPU-heavy half of ingest, the same code on the event loop (small
// bodies) and in the check worker (large ones). Answers per event, or throws the request's own HttpError.
//
// The answer crosses threads, so it holds no object per event: ids back to back in bytes, their dedupe hashes in a
// typed array (both moved, not copied), rejections sparse. (Cloning 100 small objects cost the event loop ~80 µs a
// request.) The event loop writes the ids from these bytes straight into the record header and the answer.
import { checkEvent, eventIdOf, type FieldError, type RequestFacts } from '../event/envelope.js';
import { envelopesOfBody, isObject, type IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import { entityKeyOf, partitionOf } from '../bus/partition.js';
import { hashEventIds } from './dedupe.js';

/** Stored event ids are UUIDs: 36 characters. */
export const EVENT_ID_CHARS = 36;
const BLANK = 0x20;

export interface CheckedBody {
  /** Events in the body, in order. */
  count: number;
  /** Each event's id back to back, ASCII, EVENT_ID_CHARS bytes each (`idAt`); a rejected event's is blank. */
  ids: Buffer;
  /** Each event's dedupe key: two 32-bit hashes of its id (`hashEventIds`). */
  hashes: Uint32Array;
  /** The app of every accepted event when they share one (the usual case); null when `apps` says it per event. */
  app: string | null;
  apps: Array<string | null> | null;
  /** Rejected events: [index, error], in order. */
  errors: Array<[number, FieldError]>;
  /** Each event's bus partition, only when the bus has more than one (BUS_PARTITIONS). */
  partitions: Uint16Array | null;
  /** One event sent as one (not as a list): the answer is that event's alone. */
  singular: boolean;
}

export const idAt = (b: CheckedBody, i: number): string => b.ids.toString('latin1', i * EVENT_ID_CHARS, (i + 1) * EVENT_ID_CHARS);
export const appAt = (b: CheckedBody, i: number): string | null => (b.apps ? b.apps[i]! : b.app);

export function parseJsonBody(raw: Buffer): unknown {
  if (raw.length === 0) throw new HttpError(400, 'invalid_json', 'body is empty');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'invalid_json', `body is not valid JSON: ${(e as Error).message}`);
  }
}

export function checkBody(route: IngestRoute, body: unknown, facts: RequestFacts, maxEvents: number, partitions = 1): CheckedBody {
  const envelopes = envelopesOfBody(route, body, facts);
  if (!envelopes) {
    if (route === 'ingest' || route.startsWith('segment:') && route !== 'segment:batch') throw new HttpError(400, 'invalid_field', 'body must be a JSON object', 'event');
    throw new HttpError(400, 'missing_field', 'must be an array of events', route === 'segment:batch' ? 'batch' : 'events');
  }
  if (envelopes.length === 0) throw new HttpError(400, 'invalid_field', 'must hold at least one event', route === 'segment:batch' ? 'batch' : 'events');
  if (envelopes.length > maxEvents) throw new HttpError(413, 'too_many_events', `at most ${maxEvents} events per batch`, 'events');
  const count = envelopes.length;
  // Its own memory (not the shared pool), so the check worker can move it to the event loop.
  const ids = Buffer.allocUnsafeSlow(count * EVENT_ID_CHARS);
  let app: string | null = null;
  let apps: Array<string | null> | null = null;
  const errors: Array<[number, FieldError]> = [];
  const parts = partitions > 1 ? new Uint16Array(count) : null;
  for (let i = 0; i < count; i++) {
    const c = checkEvent(envelopes[i], facts);
    if (!c.ok) {
      errors.push([i, c.error]);
      ids.fill(BLANK, i * EVENT_ID_CHARS, (i + 1) * EVENT_ID_CHARS);
      if (apps) apps.push(null);
      continue;
    }
    const eventId = eventIdOf(c.event);
    ids.write(eventId, i * EVENT_ID_CHARS, EVENT_ID_CHARS, 'latin1');
    const appId = c.event.appId;
    if (apps) apps.push(appId);
    else if (app === null) app = appId;
    else if (appId !== app) {
      // Apps differ (admin key): say it per event from here on.
      const rejected = new Set(errors.map(([at]) => at));
      apps = [];
      for (let k = 0; k < i; k++) apps.push(rejected.has(k) ? null : app);
      apps.push(appId);
    }
    if (parts) parts[i] = partitionOf(entityKeyOf(c.event.env, eventId), partitions);
  }
  if (apps) app = null;
  const singular =
    route === 'ingest' ||
    (route.startsWith('segment:') && route !== 'segment:batch') ||
    (route === 'collect' && !Array.isArray(body) && !(isObject(body) && Array.isArray(body.events)));
  return { count, ids, hashes: hashEventIds(ids, count, EVENT_ID_CHARS), app, apps, errors, partitions: parts, singular };
}
