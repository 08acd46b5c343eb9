// The detector as a bus consumer: rebuilds each record's events, scores them with the engine, stores what it raises,
// and snapshots the engine's state with the log position it covers. After a restart it restores the snapshot and
// replays from that position: anomaly ids are deterministic and stored idempotently, so the replay raises nothing twice.
import type { Bus } from '../bus/bus.js';
import type { PressureGauge } from '../bus/ingest-pressure.js';
import { decodeIngestRecord } from '../event/ingest-record.js';
import type { Logger } from '../obs/logger.js';
import type { Anomaly } from './anomaly.js';
import type { AnomalyStore, SnapshotStore } from './anomaly-store.js';
import type { DetectionEngine } from './engine.js';

export const DETECTOR_CONSUMER = 'detector';

/** The consumer (and snapshot) name of the detector owning bus partition `partition` (null: the whole bus). */
export function detectorConsumerName(partition: number | null): string {
  return partition === null ? DETECTOR_CONSUMER : `${DETECTOR_CONSUMER}-p${partition}`;
}

export interface DetectorStats {
  position: number;
  events: number;
  anomaliesRaised: number;
  anomaliesStored: number;
  /** Wall time from an event's server receipt to its anomaly being stored (ms), per stored anomaly. */
  lastLatencyMs: number | null;
}

export interface DetectorConsumerOptions {
  bus: Bus;
  /** Its bus consumer and snapshot name: `detector`, or `detector-p<N>` for the owner of bus partition N. */
  consumer?: string;
  engine: DetectionEngine;
  anomalies: AnomalyStore;
  snapshots: SnapshotStore;
  log: Logger;
  snapshotEveryMs?: number;
  /** Records per read. */
  readBatch?: number;
  /** Called with every anomaly newly stored (reactions: webhooks, alerts) and its ingest → stored latency. */
  onStored?: (stored: readonly Anomaly[], latencyMs: number[]) => void;
  now?: () => number;
  /** Defers scoring during an ingest burst (bounded by the policy's max deferral). */
  defer?: PressureGauge;
}

export class DetectorConsumer {
  private position = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private lastSnapshot = 0;
  private wake: (() => void) | null = null;
  private committing: Promise<void> = Promise.resolve();
  private snapshotting: Promise<void> | null = null;
  readonly stats: DetectorStats = { position: 0, events: 0, anomaliesRaised: 0, anomaliesStored: 0, lastLatencyMs: null };

  constructor(private readonly o: DetectorConsumerOptions) {}

  get name(): string {
    return this.o.consumer ?? DETECTOR_CONSUMER;
  }

  get committedPosition(): number {
    return this.position;
  }

  /** Restores the newest snapshot (or starts fresh from the committed offset) and starts consuming. */
  async start(): Promise<void> {
    const { bus, engine, snapshots, log } = this.o;
    const snap = await snapshots.load(this.name);
    if (snap) {
      engine.restore(snap.data);
      this.position = Number(snap.position ?? 0);
      log.info({ position: this.position, events: snap.events }, 'detector: restored its snapshot');
    } else {
      this.position = await bus.committed(this.name);
    }
    this.position = Math.max(this.position, bus.startOffset());
    this.stats.position = this.position;
    this.lastSnapshot = this.now();
    this.running = true;
    this.loop = this.run();
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private async run(): Promise<void> {
    const { bus, log } = this.o;
    while (this.running) {
      try {
        if (await this.o.defer?.deferAt(bus, this.position)) {
          await Promise.race([new Promise((r) => setTimeout(r, 100)), new Promise<void>((r) => (this.wake = r))]);
          continue;
        }
        const recs = await bus.read(this.position, this.o.readBatch ?? 100);
        if (recs.length === 0) {
          await Promise.race([bus.waitFor(this.position, 200), new Promise<void>((r) => (this.wake = r))]);
          this.maybeSnapshot();
          continue;
        }
        const raised: Anomaly[] = [];
        const receivedAt = new Map<string, number>();
        let next = this.position;
        for (const rec of recs) {
          const { header, events } = decodeIngestRecord(rec.payload);
          for (const ev of events) {
            const found = this.o.engine.process(ev);
            this.stats.events++;
            if (found.length) {
              for (const a of found) {
                raised.push(a);
                receivedAt.set(a.id, header.receivedAt);
              }
            }
          }
          next = rec.offset + 1;
          // A burst that began during this read: stop scoring now (the rest is read again later).
          if (this.o.defer?.shouldDefer(header.receivedAt)) break;
        }
        this.position = next;
        this.stats.position = this.position;
        if (raised.length) await this.store(raised, receivedAt);
        this.maybeSnapshot();
      } catch (err) {
        log.error({ err }, 'detector: consuming failed; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async store(raised: Anomaly[], receivedAt: Map<string, number>): Promise<void> {
    this.stats.anomaliesRaised += raised.length;
    const fresh = await this.o.anomalies.insert(raised);
    if (!fresh.length) return;
    this.stats.anomaliesStored += fresh.length;
    const now = this.now();
    const latencies = fresh.map((a) => now - (receivedAt.get(a.id) ?? now));
    this.stats.lastLatencyMs = latencies[latencies.length - 1] ?? null;
    this.o.onStored?.(fresh, latencies);
  }

  /** Starts a snapshot when one is due and none is in flight; scoring goes on while it compresses and saves. */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.now() - this.lastSnapshot < (this.o.snapshotEveryMs ?? 10_000)) return;
    this.snapshotting = this.snapshot()
      .catch((err: unknown) => this.o.log.error({ err }, 'detector: snapshot failed (retried at the next one)'))
      .finally(() => {
        this.snapshotting = null;
      });
  }

  /**
   * Saves the engine's state with the position it covers, then commits that position on the bus (which only lets
   * retention drop what the snapshot covers). The bus commit (a few fsyncs on the log's thread) is not waited for on
   * the scoring path: commits are chained in order, and a restart trusts the snapshot's own position anyway.
   */
  async snapshot(waitForCommit = false): Promise<void> {
    const { engine, snapshots, bus, log } = this.o;
    engine.sweep();
    const position = this.position;
    this.lastSnapshot = this.now();
    // Serialised synchronously here (the state cannot move under it), compressed in the I/O pool while scoring goes on.
    const data = await engine.snapshotAsync();
    await snapshots.save(this.name, data, String(position), this.stats.events);
    this.committing = this.committing
      .then(() => bus.commit(this.name, position))
      .catch((err: unknown) => log.error({ err, position }, 'detector: committing its position failed (retried at the next snapshot)'));
    if (waitForCommit) await this.committing;
  }

  /** Stops after the current batch and takes a final snapshot. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.snapshotting;
    await this.snapshot(true);
  }
}
