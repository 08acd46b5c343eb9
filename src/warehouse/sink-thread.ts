// The main thread's handle on the sink worker: starts it, serves it the log, knows its committed position.
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
import type { Bus } from '../bus/bus.js';
import { serveBus } from '../bus/bus-port.js';
import type { Logger } from '../obs/logger.js';
import { SINK_CONSUMER } from './sink.js';
import type { SinkWorkerData, SinkWorkerMessage } from './sink-worker.js';

export interface SinkThreadOptions {
  bus: Bus;
  warehouseDir: string;
  stagingDir: string;
  batchMaxEvents: number;
  flushIntervalMs: number;
  logLevel: string;
  /** Linux nice value of the sink's thread and its DuckDB threads. */
  nice: number;
  log: Logger;
}

export class SinkThread {
  private position = 0;
  private worker: Worker | null = null;
  private readonly waiters = new Map<string, Array<(m: SinkWorkerMessage) => void>>();

  constructor(private readonly o: SinkThreadOptions) {}

  /** The sink's committed offset: every record below it is in Parquet. */
  get committedOffset(): number {
    return this.position;
  }

  async start(): Promise<void> {
    this.position = Math.max(await this.o.bus.committed(SINK_CONSUMER), this.o.bus.startOffset());
    const channel = new MessageChannel();
    serveBus(this.o.bus, channel.port1, {
      onCommit: (consumer, next) => {
        if (consumer === SINK_CONSUMER) this.position = next;
      },
    });
    const data: SinkWorkerData = {
      busPort: channel.port2,
      warehouseDir: this.o.warehouseDir,
      stagingDir: this.o.stagingDir,
      batchMaxEvents: this.o.batchMaxEvents,
      flushIntervalMs: this.o.flushIntervalMs,
      logLevel: this.o.logLevel,
      nice: this.o.nice,
    };
    const worker = new Worker(new URL('./sink-worker.js', import.meta.url), { workerData: data, transferList: [channel.port2] });
    this.worker = worker;
    worker.on('message', (m: SinkWorkerMessage) => {
      if (m.type === 'fatal') this.o.log.fatal({ error: m.message }, 'warehouse sink failed');
      const list = this.waiters.get(m.type);
      if (list?.length) list.shift()!(m);
    });
    worker.on('error', (err) => this.o.log.fatal({ err }, 'warehouse sink thread crashed'));
    const first = await this.next('ready', 'fatal');
    if (first.type === 'fatal') throw new Error(`warehouse sink did not start: ${first.message}`);
  }

  private next(...types: SinkWorkerMessage['type'][]): Promise<SinkWorkerMessage> {
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

  /** Resolves once every record below `offset` is in the warehouse. */
  async drainTo(offset: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.position < offset) {
      if (Date.now() > deadline) throw new Error(`sink did not reach offset ${offset} (at ${this.position})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The worker's metrics, to merge into this process's /metrics. */
  async metricsJson(): Promise<MetricsJson> {
    if (!this.worker) return [];
    const reply = this.next('metrics');
    this.worker.postMessage({ type: 'metrics' });
    const m = (await Promise.race([reply, new Promise<null>((r) => setTimeout(() => r(null), 1000))])) as SinkWorkerMessage | null;
    return m?.type === 'metrics' ? (m.json as MetricsJson) : [];
  }

  /** Flushes what is on the log to Parquet, then ends the thread. */
  async stop(): Promise<void> {
    if (!this.worker) return;
    const stopped = this.next('stopped');
    this.worker.postMessage({ type: 'stop' });
    await stopped;
    await this.worker.terminate();
    this.worker = null;
  }
}
