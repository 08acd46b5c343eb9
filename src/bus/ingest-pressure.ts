// Background consumers step aside during an ingest burst. On one machine the OS scheduler cannot keep a niced thread
// from slowing the ingest path (caches, memory bandwidth, shared cores), so above a configured ingest rate the sink and
// the detector defer their work, at most until their oldest pending record is `maxDeferMs` old; they catch up when
// the burst ends. The ingest thread publishes its rate through shared memory; consumers read it without messages.

import { decodeIngestHeader } from '../event/ingest-record.js';
import type { Bus } from './bus.js';

const RATE = 0;
const UPDATED_AT = 1;

/**
 * The rate is exponentially decaying (time constant `TAU_MS`): each request adds its events at once, and a reader
 * decays the published figure to its own now. A burst of 200k events/s crosses 20k/s within ~25 ms, so consumers step
 * aside before they pick up work; it falls back ~0.5 s after the burst ends, and a short dip inside one does not count.
 */
const TAU_MS = 200;

const decayed = (rate: number, sinceMs: number): number => (sinceMs <= 0 ? rate : rate * Math.exp(-sinceMs / TAU_MS));

/** Ingest side: adds each request's events, as it arrives, to the published rate. */
export class IngestPressure {
  readonly buffer = new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT);
  private readonly view = new Float64Array(this.buffer);

  add(events: number, now = Date.now()): void {
    this.view[RATE] = decayed(this.view[RATE]!, now - this.view[UPDATED_AT]!) + (events * 1000) / TAU_MS;
    this.view[UPDATED_AT] = now;
  }
}

export interface DeferPolicy {
  /** Ingest events/s above which consumers defer; 0 = never defer. */
  aboveEventsPerSecond: number;
  /** Longest a pending record may wait because of deferring (ms). */
  maxDeferMs: number;
}

/** Consumer side: reads the published rate. */
export class PressureGauge {
  private readonly view: Float64Array;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly policy: DeferPolicy,
  ) {
    this.view = new Float64Array(buffer);
  }

  ingestEventsPerSecond(now = Date.now()): number {
    return decayed(this.view[RATE]!, now - this.view[UPDATED_AT]!);
  }

  get bursting(): boolean {
    return this.policy.aboveEventsPerSecond > 0 && this.ingestEventsPerSecond() > this.policy.aboveEventsPerSecond;
  }

  /** True while ingest is above the burst rate and the oldest pending record (received at `receivedAt`) may wait. */
  shouldDefer(receivedAt: number, now = Date.now()): boolean {
    return this.bursting && now - receivedAt < this.policy.maxDeferMs;
  }

  /**
   * Whether a consumer whose next record is at `offset` should wait now. Reads that one record only when ingest is
   * bursting (a consumer that defers must not keep pulling whole batches through the log's thread).
   */
  async deferAt(bus: Bus, offset: number): Promise<boolean> {
    if (!this.bursting) return false;
    const [head] = await bus.read(offset, 1);
    return head !== undefined && this.shouldDefer(decodeIngestHeader(head.payload).receivedAt);
  }
}
