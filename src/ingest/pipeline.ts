// The ingest pipeline, top to bottom: normalise (validate) → dedupe → append durably → answer per event.
// Edge concerns (auth, rate limit, signature, bots, IP hashing) run before it as Fastify hooks (edge.ts).
import type { Bus } from '../bus/bus.js';
import { normalizeEvent, type FieldError, type RequestFacts } from '../event/envelope.js';
import { serializeStoredEvent, type StoredEvent } from '../event/stored-event.js';
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

export type IngestEvents = (rawEvents: unknown[], facts: RequestFacts, route: string) => Promise<EventResult[]>;

export function createIngestPipeline({ bus, dedupe, metrics }: IngestDeps): IngestEvents {
  return async function ingestEvents(rawEvents, facts, route) {
    const results: EventResult[] = new Array(rawEvents.length);
    const toAppend: StoredEvent[] = [];
    const keys: string[] = [];
    const inBatch = new Set<string>();
    const waits: Array<{ index: number; eventId: string; settled: Promise<boolean> }> = [];
    // Counted per request, not per event: metric label lookups are costly on the hot path.
    const rejectedBy = new Map<string, number>();
    let duplicates = 0;

    for (let i = 0; i < rawEvents.length; i++) {
      const n = normalizeEvent(rawEvents[i], facts);
      if (!n.ok) {
        results[i] = { status: 'rejected', error: n.error };
        rejectedBy.set(n.error.code, (rejectedBy.get(n.error.code) ?? 0) + 1);
        continue;
      }
      const ev = n.event;
      const key = EventIdDedupe.key(ev.app_id, ev.event_id);
      const verdict = dedupe.check(key);
      if (verdict.kind === 'seen' || inBatch.has(key)) {
        results[i] = { status: 'duplicate', eventId: ev.event_id };
        duplicates++;
      } else if (verdict.kind === 'pending') {
        waits.push({ index: i, eventId: ev.event_id, settled: verdict.settled });
      } else {
        inBatch.add(key);
        keys.push(key);
        toAppend.push(ev);
        results[i] = { status: 'accepted', eventId: ev.event_id };
      }
    }

    if (toAppend.length > 0) {
      const payloads = toAppend.map((ev) => Buffer.from(serializeStoredEvent(ev)));
      const appended = bus.appendDurably(payloads);
      dedupe.begin(keys, appended.then(() => true, () => false));
      try {
        await appended;
      } catch (err) {
        dedupe.end(keys, false);
        throw new HttpError(503, 'storage_unavailable', `events not stored, retry: ${(err as Error).message}`, undefined, {
          'retry-after': '1',
        });
      }
      dedupe.end(keys, true);
      const perApp = new Map<string, number>();
      for (const ev of toAppend) perApp.set(ev.app_id, (perApp.get(ev.app_id) ?? 0) + 1);
      for (const [app_id, n] of perApp) metrics.eventsAccepted.inc({ app_id, route }, n);
    }
    for (const [reason, n] of rejectedBy) metrics.eventsRejected.inc({ reason }, n);
    if (duplicates) metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' }, duplicates);

    // Same id in flight in another request: its outcome decides ours, so a retry is never silently dropped.
    for (const w of waits) {
      if (!(await w.settled)) throw new HttpError(503, 'storage_unavailable', 'events not stored, retry', undefined, { 'retry-after': '1' });
      results[w.index] = { status: 'duplicate', eventId: w.eventId };
      metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' });
    }
    return results;
  };
}

/** Rebuilds the dedupe memory from the newest records of the log (ids acked before a restart stay idempotent). */
export async function warmDedupe(bus: Bus, dedupe: EventIdDedupe, window: number, keyOf: (p: Buffer) => string | null): Promise<number> {
  const from = Math.max(bus.startOffset(), bus.endOffset() - window);
  let n = 0;
  for (let off = from; off < bus.endOffset(); ) {
    const recs = await bus.read(off, 20_000);
    if (recs.length === 0) break;
    for (const r of recs) {
      const k = keyOf(r.payload);
      if (k) {
        dedupe.remember(k);
        n++;
      }
    }
    off = recs[recs.length - 1]!.offset + 1;
  }
  return n;
}
