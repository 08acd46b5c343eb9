// The main thread's handle on a bus consumer running in a worker thread (the warehouse sink, the detector): starts
// it, serves it the log over a MessagePort (or lets it connect to JetStream itself), knows its committed position,
// merges its metrics, stops it.
import { setPriority } from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import type { Logger } from '../obs/logger.js';
import type { Bus } from './bus.js';
import { serveBus } from './bus-port.js';
import type { NatsBusSpec } from './open-bus.js';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What a consumer worker says to its handle. The worker gets `busPort` or `natsBus` in its workerData (see openWorkerBus) and answers `metrics`/`stop`. */
export type ConsumerWorkerMessage =
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'metrics'; json: unknown }
  | { type: 'fatal'; message: string };

/**
 * Lowers the calling worker thread's CPU priority (Linux: per thread; threads it starts later inherit it).
 * Not permitted (or not Linux): it runs at normal priority.
 */
export function lowerThisThread(nice: number): void {
  try {
    if (nice > 0) setPriority(0, nice);
  } catch {
    /* not permitted here */
  }
}

export interface ConsumerThreadOptions<D> {
  /** The consumer's name on the bus (its committed offset). */
  consumer: string;
  /** The worker's entry module. */
  workerUrl: URL;
  /** The worker's data (busPort or natsBus is added). */
  data: D;
  bus: Bus;
  /** The bus is this JetStream stream: the worker opens its own connection, bound to `consumer`. */
  nats?: (NatsBusSpec & { partition?: number }) | null;
  log: Logger;
}

/** How often the committed position of a JetStream consumer is read back (its commits do not pass through here). */
const NATS_POSITION_POLL_MS = 1000;

export class ConsumerThread<D extends object> {
  private position = 0;
  private worker: Worker | null = null;
  private positionPoll: NodeJS.Timeout | null = null;
  private readonly waiters = new Map<string, Array<(m: ConsumerWorkerMessage) => void>>();

  constructor(private readonly o: ConsumerThreadOptions<D>) {}

  /** The consumer's committed offset: every record below it is done. */
  get committedOffset(): number {
    return this.position;
  }

  async start(): Promise<void> {
    const { bus, consumer, log } = this.o;
    this.position = Math.max(await bus.committed(consumer), bus.startOffset());
    let worker: Worker;
    if (this.o.nats) {
      worker = new Worker(this.o.workerUrl, { workerData: { ...this.o.data, natsBus: { ...this.o.nats, consumer } } });
      this.positionPoll = setInterval(() => void this.refreshPosition().catch(() => undefined), NATS_POSITION_POLL_MS);
      this.positionPoll.unref();
    } else {
      const channel = new MessageChannel();
      serveBus(bus, channel.port1, {
        onCommit: (name, next) => {
          if (name === consumer) this.position = next;
        },
      });
      worker = new Worker(this.o.workerUrl, { workerData: { ...this.o.data, busPort: channel.port2 }, transferList: [channel.port2] });
    }
    this.worker = worker;
    worker.on('message', (m: ConsumerWorkerMessage) => {
      if (m.type === 'fatal') log.fatal({ error: m.message }, `${consumer} failed`);
      const list = this.waiters.get(m.type);
      if (list?.length) list.shift()!(m);
    });
    worker.on('error', (err) => log.fatal({ err }, `${consumer} thread crashed`));
    const first = await this.next('ready', 'fatal');
    if (first.type === 'fatal') throw new Error(`${consumer} did not start: ${first.message}`);
  }

  private async refreshPosition(): Promise<void> {
    this.position = Math.max(this.position, await this.o.bus.committed(this.o.consumer));
  }

  private next(...types: ConsumerWorkerMessage['type'][]): Promise<ConsumerWorkerMessage> {
    return new Promise((resolve) => {
      let done = false;
      for (const t of types) {
        const list = this.waiters.get(t) ?? [];
        list.push((m) => {
          if (done) return;
          done = true;
          resolve(m);
        });
        this.waiters.set(t, list);
      }
    });
  }

  /** Resolves once the consumer committed every record below `offset`. */
  async drainTo(offset: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.position < offset) {
      if (Date.now() > deadline) throw new Error(`${this.o.consumer} did not reach offset ${offset} (at ${this.position})`);
      await new Promise((r) => setTimeout(r, this.o.nats ? 50 : 10));
      if (this.o.nats) await this.refreshPosition();
    }
  }

  /** The worker's metrics, to merge into this process's /metrics. */
  async metricsJson(): Promise<MetricsJson> {
    if (!this.worker) return [];
    const reply = this.next('metrics');
    this.worker.postMessage({ type: 'metrics' });
    const m = (await Promise.race([reply, new Promise<null>((r) => setTimeout(() => r(null), 1000))])) as ConsumerWorkerMessage | null;
    return m?.type === 'metrics' ? (m.json as MetricsJson) : [];
  }

  /** Asks the worker to finish its work (flush, snapshot), then ends the thread. */
  async stop(): Promise<void> {
    if (this.positionPoll) clearInterval(this.positionPoll);
    this.positionPoll = null;
    if (!this.worker) return;
    const stopped = this.next('stopped');
    this.worker.postMessage({ type: 'stop' });
    await stopped;
    await this.worker.terminate();
    this.worker = null;
  }
}
