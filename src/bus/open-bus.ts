// Which bus a process uses, from configuration: the embedded log in the data dir, or a NATS JetStream stream
// (CAUSALITY_BUS=nats://…). Consumer worker threads get a MessagePort to the owner's embedded log, or open their
// own JetStream connection bound to their consumer.
import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../config.js';
import type { Bus } from './bus.js';
import { RemoteBus } from './bus-port.js';
import { JetStreamBus } from './jetstream-bus.js';
import { SegmentedLog } from './segmented-log.js';

/** Where a JetStream bus lives: what a worker thread needs to open its own. Plain data (structured-clonable). */
export interface NatsBusSpec {
  servers: string[];
  stream: string;
  partitions?: number;
}

/** The JetStream location configured by CAUSALITY_BUS / CAUSALITY_BUS_STREAM; null for the embedded log. */
export function natsBusSpec(config: Pick<Config, 'busUrl' | 'busStream' | 'busPartitions'>): NatsBusSpec | null {
  if (!config.busUrl) return null;
  const servers = config.busUrl.split(',').map((s) => s.trim()).filter(Boolean);
  return { servers, stream: config.busStream, partitions: config.busPartitions };
}

export type BusConfig = Pick<Config, 'busUrl' | 'busStream' | 'busPartitions' | 'dataDir' | 'segmentBytes' | 'retentionHours' | 'retentionBytes'>;

/** The process's bus (unbound: appends, and reads for dedupe warm-up and tools). */
export async function openBus(config: BusConfig, hooks: { onFsync?: (seconds: number, records: number) => void } = {}): Promise<Bus> {
  const nats = natsBusSpec(config);
  if (nats) return JetStreamBus.open(nats);
  return SegmentedLog.open({
    dir: join(config.dataDir, 'log'),
    segmentBytes: config.segmentBytes,
    retentionMs: config.retentionHours * 3_600_000,
    retentionBytes: config.retentionBytes > 0 ? config.retentionBytes : Infinity,
    ...(hooks.onFsync ? { onFsync: hooks.onFsync } : {}),
  });
}

/** What a consumer worker thread finds in its workerData to reach the bus (ConsumerThread adds it). */
export interface WorkerBusData {
  /** The owner thread's embedded log, through a MessagePort. */
  busPort?: MessagePort;
  /** A JetStream stream: the worker connects itself, bound to `consumer`. */
  natsBus?: NatsBusSpec & { consumer: string; /** Only this partition's records (a detector owning it). */ partition?: number };
}

/** Inside a consumer worker: its bus. */
export async function openWorkerBus(data: WorkerBusData): Promise<Bus> {
  if (data.natsBus) {
    const { consumer, partition, ...spec } = data.natsBus;
    return JetStreamBus.open({ ...spec, consumer: { name: consumer, ...(partition === undefined ? {} : { partition }) } });
  }
  if (!data.busPort) throw new Error('worker data has neither busPort nor natsBus');
  return RemoteBus.connect(data.busPort);
}
