// Checks every event of a request body: the CPU-heavy half of ingest, the same code on the event loop (small
// bodies) and in the check worker (large ones). Answers per event, or throws the request's own HttpError.
import { checkEvent, eventIdOf, type FieldError, type RequestFacts } from '../event/envelope.js';
import { envelopesOfBody, isObject, type IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import { entityKeyOf, partitionOf } from '../bus/partition.js';

/** `partition` only when the bus has more than one (BUS_PARTITIONS). */
export type EventCheck = { appId: string; eventId: string; partition?: number } | { error: FieldError };

export interface CheckedBody {
  checks: EventCheck[];
  /** One event sent as one (not as a list): the answer is that event's alone. */
  singular: boolean;
}

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
  const checks: EventCheck[] = new Array(envelopes.length);
  for (let i = 0; i < envelopes.length; i++) {
    const c = checkEvent(envelopes[i], facts);
    if (!c.ok) {
      checks[i] = { error: c.error };
      continue;
    }
    const eventId = eventIdOf(c.event);
    checks[i] = partitions > 1 ? { appId: c.event.appId, eventId, partition: partitionOf(entityKeyOf(c.event.env, eventId), partitions) } : { appId: c.event.appId, eventId };
  }
  const singular =
    route === 'ingest' ||
    (route.startsWith('segment:') && route !== 'segment:batch') ||
    (route === 'collect' && !Array.isArray(body) && !(isObject(body) && Array.isArray(body.events)));
  return { checks, singular };
}
