// The ingest pipeline, top to bottom: check (validate) → dedupe → append the request durably → answer per event.
// Edge concerns (auth, rate limit, signature, bots, IP hashing) run before it (edge.ts). Stored events are built
// by consumers from the appended record (src/event/ingest-record.ts), off the request path.
import type { Bus } from '../bus/bus.js';
import { checkEvent, eventIdOf, type FieldError, type RequestFacts } from '../event/envelope.js';
import { decodeIngestHeader, encodeIngestRecord, type IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import { EventIdDedupe } from './dedupe.js';

export type EventResult =
  | { status: 'accepted'; eventId: string }
  | { status: 'duplicate'; eventId: string }
  | { status: 'rejected'; error: FieldError };

export interface IngestDeps {
  bus: Bus;
  dedupe: EventIdDedupe;
  metrics: Metrics;
}

/** `envelopes` are the client events of `rawBody`, in order (see envelopesOfBody). */
export type IngestEvents = (envelopes: unknown[], facts: RequestFacts, route: IngestRoute, rawBody: Buffer) => Promise<EventResult[]>;

const unavailable = (detail: string) =>
  new HttpError(503, 'storage_unavailable', `events not stored, retry: ${detail}`, undefined, { 'retry-after': '1' });

export function createIngestPipeline({ bus, dedupe, metrics }: IngestDeps): IngestEvents {
  return async function ingestEvents(envelopes, facts, route, rawBody) {
    const results: EventResult[] = new Array(envelopes.length);
    const ids: Array<string | null> = new Array(envelopes.length).fill(null);
    const keys: string[] = [];
    const inBatch = new Set<string>();
    const waits: Array<{ index: number; eventId: string; settled: Promise<boolean> }> = [];
    // Counted per request, not per event: metric label lookups are costly on the hot path.
    const rejectedBy = new Map<string, number>();
    const acceptedBy = new Map<string, number>();
    let duplicates = 0;

    for (let i = 0; i < envelopes.length; i++) {
      const c = checkEvent(envelopes[i], facts);
      if (!c.ok) {
        results[i] = { status: 'rejected', error: c.error };
        rejectedBy.set(c.error.code, (rejectedBy.get(c.error.code) ?? 0) + 1);
        continue;
      }
      const appId = c.event.appId;
      const eventId = eventIdOf(c.event);
      const key = EventIdDedupe.key(appId, eventId);
      const verdict = dedupe.check(key);
      if (verdict.kind === 'seen' || inBatch.has(key)) {
        results[i] = { status: 'duplicate', eventId };
        duplicates++;
      } else if (verdict.kind === 'pending') {
        waits.push({ index: i, eventId, settled: verdict.settled });
      } else {
        inBatch.add(key);
        keys.push(key);
        ids[i] = key;
        acceptedBy.set(appId, (acceptedBy.get(appId) ?? 0) + 1);
        results[i] = { status: 'accepted', eventId };
      }
    }

    if (keys.length > 0) {
      const record = encodeIngestRecord(
        { v: 1, route, receivedAt: facts.receivedAt, keyAppId: facts.appId, ipHash: facts.ipHash, userAgent: facts.userAgent, ids },
        rawBody,
      );
      const appended = bus.appendDurably([record]);
      dedupe.begin(keys, appended.then(() => true, () => false));
      try {
        await appended;
      } catch (err) {
        dedupe.end(keys, false);
        throw unavailable((err as Error).message);
      }
      dedupe.end(keys, true);
      for (const [app_id, n] of acceptedBy) metrics.eventsAccepted.inc({ app_id, route }, n);
    }
    for (const [reason, n] of rejectedBy) metrics.eventsRejected.inc({ reason }, n);
    if (duplicates) metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' }, duplicates);

    // Same id in flight in another request: its outcome decides ours, so a retry is never silently dropped.
    for (const w of waits) {
      if (!(await w.settled)) throw unavailable('the same event id failed to store in a concurrent request');
      results[w.index] = { status: 'duplicate', eventId: w.eventId };
      metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' });
    }
    return results;
  };
}

/** Rebuilds the dedupe memory from the newest records of the log (ids acked before a restart stay idempotent). */
export async function warmDedupe(bus: Bus, dedupe: EventIdDedupe, windowEvents: number): Promise<number> {
  // Walk back from the end until the window is covered; records hold many events, so count events, not records.
  const chunk = 2_000;
  let from = bus.endOffset();
  let events = 0;
  const headers: string[][] = [];
  while (from > bus.startOffset() && events < windowEvents) {
    const start = Math.max(bus.startOffset(), from - chunk);
    const recs = await bus.read(start, from - start);
    const keys: string[] = [];
    for (const r of recs) for (const k of decodeIngestHeader(r.payload).ids) if (k) keys.push(k);
    headers.push(keys);
    events += keys.length;
    from = start;
  }
  // Oldest first, so the two-generation memory keeps the newest ids.
  for (let i = headers.length - 1; i >= 0; i--) for (const k of headers[i]!) dedupe.remember(k);
  return events;
}
