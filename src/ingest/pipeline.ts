// The ingest pipeline, top to bottom: edge (auth, rate limit, signature, bots, IP hash: edge.ts) → check every event
// (check-body.ts, in a worker for large bodies) → dedupe → append the request durably → answer per event.
// Stored events are built by consumers from the appended record (src/event/ingest-record.ts), off the request path.
import { createHash } from 'node:crypto';
import type { Bus, Payload } from '../bus/bus.js';
import type { IngestPressure } from '../bus/ingest-pressure.js';
import type { RequestFacts } from '../event/envelope.js';
import { appendedIds, decodeIngestHeader, encodeIngestHeaderLine, type IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import { appAt, EVENT_ID_CHARS, idAt, type CheckedBody } from './check-body.js';
import { EventIdDedupe } from './dedupe.js';

/** What became of each event of a request (IngestOutcome.statuses). */
export const ACCEPTED = 0;
export const DUPLICATE = 1;
export const REJECTED = 2;

export interface IngestOutcome {
  /** Per event, in request order: ACCEPTED, DUPLICATE or REJECTED (the error is in the CheckedBody). */
  statuses: Uint8Array;
  accepted: number;
  duplicate: number;
  rejected: number;
}

export interface IngestDeps {
  bus: Bus;
  dedupe: EventIdDedupe;
  metrics: Metrics;
  /** Told how many events each request brings, as it arrives (background consumers defer during bursts). */
  pressure?: IngestPressure;
}

/** `body` is the checked form of `rawBody` (checkBody). */
export type IngestEvents = (body: CheckedBody, facts: RequestFacts, route: IngestRoute, rawBody: Buffer) => Promise<IngestOutcome>;

const unavailable = (detail: string) =>
  new HttpError(503, 'storage_unavailable', `events not stored, retry: ${detail}`, undefined, { 'retry-after': '1' });

export function createIngestPipeline({ bus, dedupe, metrics, pressure }: IngestDeps): IngestEvents {
  return async function ingestEvents(body, facts, route, rawBody) {
    // Counted on arrival, not on ack: the first requests of a burst already tell consumers to step aside.
    pressure?.add(body.count);
    const statuses = new Uint8Array(body.count);
    const waits: Array<{ index: number; settled: Promise<boolean> }> = [];
    let accepted = 0;
    let duplicate = 0;
    let settle!: (durable: boolean) => void;
    const seq = dedupe.startRequest(new Promise<boolean>((r) => (settle = r)));

    try {
      for (const [i] of body.errors) statuses[i] = REJECTED;
      dedupe.prefetch(body.hashes, 0, body.count);
      for (let i = 0; i < body.count; i++) {
        if (statuses[i] === REJECTED) continue;
        const claim = dedupe.claim(appAt(body, i)!, body.hashes, i, seq);
        if (claim === 'new') accepted++;
        else if (claim === 'seen' || claim === 'same-request') {
          statuses[i] = DUPLICATE;
          duplicate++;
        } else {
          statuses[i] = DUPLICATE; // decided below by the other request's outcome
          waits.push({ index: i, settled: claim });
        }
      }

      if (accepted > 0) {
        const apps = facts.appId ? undefined : Array.from({ length: body.count }, (_, i) => (statuses[i] === ACCEPTED ? appAt(body, i) : null));
        const fields = { v: 1 as const, route, receivedAt: facts.receivedAt, keyAppId: facts.appId, ipHash: facts.ipHash, userAgent: facts.userAgent, ...(apps ? { apps } : {}) };
        // A partitioned bus gets one record per partition the request's entities fall in: the same body, each record
        // appending only its partition's events (the others' ids are null), so one detector sees all of a device.
        const payloads: Payload[] = [];
        // Message ids only where the bus deduplicates by them: a digest per request is wasted on the embedded log.
        const msgIds: string[] | undefined = bus.deduplicatesById ? [] : undefined;
        const partitions: Array<number | undefined> = [];
        for (const [partition, appended] of recordsByPartition(body, statuses)) {
          payloads.push([encodeIngestHeaderLine(fields, body.ids, EVENT_ID_CHARS, body.count, appended), rawBody]);
          msgIds?.push(recordMessageId(facts.appId, apps, Array.from({ length: body.count }, (_, i) => (appended(i) ? idAt(body, i) : null))));
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
    countOutcome(metrics, body, facts, route, statuses, accepted, duplicate);

    // Same id in flight in another request: its outcome decides ours, so a retry is never silently dropped.
    for (const w of waits) {
      if (!(await w.settled)) throw unavailable('the same event id failed to store in a concurrent request');
      duplicate++;
      metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' });
    }
    return { statuses, accepted, duplicate, rejected: body.errors.length };
  };
}

/** Metrics are counted per request, not per event: label lookups are costly on the hot path. */
function countOutcome(metrics: Metrics, body: CheckedBody, facts: RequestFacts, route: IngestRoute, statuses: Uint8Array, accepted: number, duplicate: number): void {
  if (facts.appId) {
    if (accepted) metrics.eventsAccepted.inc({ app_id: facts.appId, route }, accepted);
  } else if (accepted) {
    const byApp = new Map<string, number>();
    for (let i = 0; i < body.count; i++) if (statuses[i] === ACCEPTED) byApp.set(appAt(body, i)!, (byApp.get(appAt(body, i)!) ?? 0) + 1);
    for (const [app_id, n] of byApp) metrics.eventsAccepted.inc({ app_id, route }, n);
  }
  if (body.errors.length) {
    const byReason = new Map<string, number>();
    for (const [, e] of body.errors) byReason.set(e.code, (byReason.get(e.code) ?? 0) + 1);
    for (const [reason, n] of byReason) metrics.eventsRejected.inc({ reason }, n);
  }
  if (duplicate) metrics.eventsDuplicate.inc({ app_id: facts.appId ?? '(admin)' }, duplicate);
}

/** Which events each record appends, per partition (in order of first event); one entry, partition undefined, when the bus has one. */
function recordsByPartition(body: CheckedBody, statuses: Uint8Array): Array<[number | undefined, (i: number) => boolean]> {
  const parts = body.partitions;
  if (!parts) return [[undefined, (i) => statuses[i] === ACCEPTED]];
  const seen = new Set<number>();
  for (let i = 0; i < body.count; i++) if (statuses[i] === ACCEPTED) seen.add(parts[i]!);
  return [...seen].map((p) => [p, (i: number) => statuses[i] === ACCEPTED && parts[i] === p]);
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
