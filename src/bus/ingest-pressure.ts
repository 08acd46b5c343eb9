// Background consumers step aside during an ingest burst. On one machine the OS scheduler cannot keep a niced thread
// from slowing the ingest path (caches, memory bandwidth, shared cores), so above a configured ingest rate the sink and
// the detector defer their work, at most until their oldest pending record is `maxDeferMs` old; they catch up when
// the burst ends. The ingest thread publishes its rate through shared memory; consumers read it without messages.

import { decodeIngestHeader } from '../event/ingest-record.js';
import type { Bus } from './bus.js';

const RATE = 0;
const UPDATED_AT = 1;

/** Ingest side: counts accepted events and publishes events/s every `everyMs`. */
export class IngestPressure {
  readonly buffer = new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT);
  private readonly view = new Float64Array(this.buffer);
  private count = 0;
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(everyMs = 250) {
    this.timer = setInterval(() => {
      const now = Date.now();
      this.view[RATE] = (this.count * 1000) / Math.max(1, now - this.last);
      this.view[UPDATED_AT] = now;
      this.count = 0;
      this.last = now;
    }, everyMs);
    this.timer.unref();
  }

  add(events: number): void {
    this.count += events;
  }

  close(): void {
    clearInterval(this.timer);
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

  get ingestEventsPerSecond(): number {
    // A stale figure (ingest thread stalled or gone) means no pressure.
    return Date.now() - this.view[UPDATED_AT]! > 2_000 ? 0 : this.view[RATE]!;
  }

  get bursting(): boolean {
    return this.policy.aboveEventsPerSecond > 0 && this.ingestEventsPerSecond > this.policy.aboveEventsPerSecond;
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
