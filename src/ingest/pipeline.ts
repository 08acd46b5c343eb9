// The ingest pipeline, top to bottom: edge (auth, rate limit, signature, bots, IP hash: edge.ts) → check every event
// (check-body.ts, in a worker for large bodies) → dedupe → append the request durably → answer per event.
// Stored events are built by consumers from the appended record (src/event/ingest-record.ts), off the request path.
import { createHash } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import type { IngestPressure } from '../bus/ingest-pressure.js';
import type { FieldError, RequestFacts } from '../event/envelope.js';
import { appendedIds, decodeIngestHeader, encodeIngestRecord, type IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import type { EventCheck } from './check-body.js';
import { EventIdDedupe } from './dedupe.js';

export type EventResult =
  | { status: 'accepted'; eventId: string }
  | { status: 'duplicate'; eventId: string }
  | { status: 'rejected'; error: FieldError };

export interface IngestDeps {
  bus: Bus;
  dedupe: EventIdDedupe;
  metrics: Metrics;
  /** Told how many events each request appended (background consumers defer during bursts). */
  pressure?: IngestPressure;
}

/** `checks` answer the client events of `rawBody`, in order (see checkBody). */
export type IngestEvents = (checks: EventCheck[], facts: RequestFacts, route: IngestRoute, rawBody: Buffer) => Promise<EventResult[]>;

const unavailable = (detail: string) =>
  new HttpError(503, 'storage_unavailable', `events not stored, retry: ${detail}`, undefined, { 'retry-after': '1' });

export function createIngestPipeline({ bus, dedupe, metrics, pressure }: IngestDeps): IngestEvents {
  return async function ingestEvents(checks, facts, route, rawBody) {
    const results: EventResult[] = new Array(checks.length);
    const ids: Array<string | null> = new Array(checks.length).fill(null);
    const apps: Array<string | null> | undefined = facts.appId ? undefined : new Array(checks.length).fill(null);
    const waits: Array<{ index: number; eventId: string; settled: Promise<boolean> }> = [];
    // Counted per request, not per event: metric label lookups are costly on the hot path.
    const rejectedBy = new Map<string, number>();
    const acceptedBy = new Map<string, number>();
    let accepted = 0;
    let duplicates = 0;
    let settle!: (durable: boolean) => void;
    const seq = dedupe.startRequest(new Promise<boolean>((r) => (settle = r)));

    try {
      for (let i = 0; i < checks.length; i++) {
        const c = checks[i]!;
        if ('error' in c) {
          results[i] = { status: 'rejected', error: c.error };
          rejectedBy.set(c.error.code, (rejectedBy.get(c.error.code) ?? 0) + 1);
          continue;
        }
        const { appId, eventId } = c;
        const claim = dedupe.claim(appId, eventId, seq);
        if (claim === 'new') {
          ids[i] = eventId;
          if (apps) apps[i] = appId;
          if (apps) acceptedBy.set(appId, (acceptedBy.get(appId) ?? 0) + 1);
          accepted++;
          results[i] = { status: 'accepted', eventId };
        } else if (claim === 'seen' || claim === 'same-request') {
          results[i] = { status: 'duplicate', eventId };
          duplicates++;
        } else {
          waits.push({ index: i, eventId, settled: claim });
        }
      }

      if (accepted > 0) {
        const base = { v: 1 as const, route, receivedAt: facts.receivedAt, keyAppId: facts.appId, ipHash: facts.ipHash, userAgent: facts.userAgent, ...(apps ? { apps } : {}) };
        // A partitioned bus gets one record per partition the request's entities fall in: the same body, each record
        // appending only its partition's events (the others' ids are null), so one detector sees all of a device.
        const byPartition = splitByPartition(checks, ids);
        const payloads: Buffer[] = [];
        // Message ids only where the bus deduplicates by them: a digest per request is wasted on the embedded log.
        const msgIds: string[] | undefined = bus.deduplicatesById ? [] : undefined;
        const partitions: Array<number | undefined> = [];
        for (const [partition, partIds] of byPartition) {
          payloads.push(encodeIngestRecord({ ...base, ids: partIds }, rawBody));
          msgIds?.push(recordMessageId(base.keyAppId, apps, partIds));
          partitions.push(partition);
        }
        try {
          await bus.appendDurably(payloads, msgIds ? { ids: msgIds, partitions } : { partitions });
        } catch (err) {
          throw unavailable((err as Error).message);
        }
      }
      dedupe.settle(seq, true);
      settle(true);
    } catch (err) {
      dedupe.settle(seq, false);
      settle(false);
      throw err;
    }
    pressure?.add(accepted);
    if (facts.appId && accepted) metrics.eventsAccepted.inc({ app_id: facts.appId, route }, accepted);
    for (const [app_id, n] of acceptedBy) metrics.eventsAccepted.inc({ app_id, route }, n);
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

/** The appended ids per partition (one entry, partition undefined, when the checks carry none). */
function splitByPartition(checks: readonly EventCheck[], ids: ReadonlyArray<string | null>): Array<[number | undefined, Array<string | null>]> {
  let parts: Map<number, Array<string | null>> | null = null;
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    if (ids[i] === null || !('partition' in c) || c.partition === undefined) continue;
    parts ??= new Map();
    let p = parts.get(c.partition);
    if (!p) parts.set(c.partition, (p = new Array<string | null>(ids.length).fill(null)));
    p[i] = ids[i]!;
  }
  if (!parts || parts.size === 0) return [[undefined, ids as Array<string | null>]];
  return [...parts];
}

/**
 * The record's message id on the bus: a digest of the events it appends. A client retry that reached another
 * ingest process is stored once by a bus that deduplicates (JetStream's duplicate window); the embedded log ignores it.
 */
function recordMessageId(keyAppId: string | null, apps: ReadonlyArray<string | null> | undefined, ids: ReadonlyArray<string | null>): string {
  return createHash('sha256').update(JSON.stringify([keyAppId, apps ?? null, ids])).digest('base64url');
}

/** Rebuilds the dedupe memory from the newest records of the log (ids acked before a restart stay idempotent). */
export async function warmDedupe(bus: Bus, dedupe: EventIdDedupe, windowEvents: number): Promise<number> {
  // Walk back from the end until the window is covered; records hold many events, so count events, not records.
  const chunk = 2_000;
  let from = bus.endOffset();
  let events = 0;
  const headers: Array<Array<[string, string]>> = [];
  while (from > bus.startOffset() && events < windowEvents) {
    const start = Math.max(bus.startOffset(), from - chunk);
    const recs = await bus.read(start, from - start);
    const keys: Array<[string, string]> = [];
    for (const r of recs) for (const pair of appendedIds(decodeIngestHeader(r.payload))) keys.push(pair);
    headers.push(keys);
    events += keys.length;
    from = start;
  }
  // Oldest first, so the two-generation memory keeps the newest ids.
  for (let i = headers.length - 1; i >= 0; i--) for (const [app, id] of headers[i]!) dedupe.remember(app, id);
  return events;
}
