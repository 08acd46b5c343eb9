// Worker-thread entry of the warehouse sink. Rebuilding events, writing Parquet and DuckDB's work run here, at a
// lower CPU priority, so they never stall the ingest event loop; the log stays with the main thread (bus-port.ts).
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { openWorkerBus, type WorkerBusData } from '../bus/open-bus.js';
import { PressureGauge, type DeferPolicy } from '../bus/ingest-pressure.js';
import { lowerThisThread, type ConsumerWorkerMessage } from '../bus/consumer-thread.js';
import { createLogger } from '../obs/logger.js';
import { createMetrics } from '../obs/metrics.js';
import { DuckEngine } from './duckdb.js';
import { openWarehouseFiles, type WarehouseFilesSettings } from './files.js';
import { WarehouseSink } from './sink.js';

export interface SinkWorkerData {
  /** Where published files go: <dataDir>/warehouse, or S3 when configured. */
  files: WarehouseFilesSettings;
  stagingDir: string;
  batchMaxEvents: number;
  flushIntervalMs: number;
  logLevel: string;
  /** Linux nice value for this thread (and the DuckDB threads it starts, which inherit it); 0 = normal. */
  nice: number;
  deferral: { buffer: SharedArrayBuffer; policy: DeferPolicy };
}

type SinkWorkerMessage = ConsumerWorkerMessage;

async function main(): Promise<void> {
  const d = workerData as SinkWorkerData & WorkerBusData;
  const port = parentPort!;
  lowerThisThread(d.nice); // DuckDB's threads, started below, inherit it
  const log = createLogger(d.logLevel, 'causality-sink');
  const metrics = createMetrics({ processMetrics: false });
  const bus = await openWorkerBus(d);
  // Linux's /dev/shm keeps the transient JSON lines in memory: no disk writes beside the log's fsyncs.
  const scratchDir = existsSync('/dev/shm') ? join('/dev/shm', `causality-sink-${process.pid}`) : undefined;
  if (scratchDir) await removeScratchOfDeadProcesses();
  const files = await openWarehouseFiles(d.files);
  const engine = await DuckEngine.create({ allowedDirectories: [files.readableRoot, d.stagingDir, ...(scratchDir ? [scratchDir] : [])] });
  const sink = new WarehouseSink({
    bus,
    engine,
    files,
    stagingDir: d.stagingDir,
    scratchDir,
    batchMaxEvents: d.batchMaxEvents,
    flushIntervalMs: d.flushIntervalMs,
    metrics,
    log,
    defer: new PressureGauge(d.deferral.buffer, d.deferral.policy),
  });
  await sink.start();
  port.on('message', async (m: { type: string }) => {
    if (m.type === 'metrics') port.postMessage({ type: 'metrics', json: await metrics.registry.getMetricsAsJSON() } satisfies SinkWorkerMessage);
    if (m.type === 'stop') {
      await sink.stop();
      engine.close();
      files.close();
      if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
      port.postMessage({ type: 'stopped' } satisfies SinkWorkerMessage);
    }
  });
  port.postMessage({ type: 'ready' } satisfies SinkWorkerMessage);
}

/** A process killed with -9 leaves its scratch directory in memory: remove those whose process is gone. */
async function removeScratchOfDeadProcesses(): Promise<void> {
  for (const name of await readdir('/dev/shm').catch(() => [] as string[])) {
    const m = /^causality-sink-(\d+)$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') await rm(join('/dev/shm', name), { recursive: true, force: true });
    }
  }
}

main().catch((err: Error) => parentPort!.postMessage({ type: 'fatal', message: err.stack ?? err.message } satisfies SinkWorkerMessage));
