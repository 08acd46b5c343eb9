// Worker-thread entry of the detector: consumes the log (through the main thread), scores events with the engine and
// the hot-reloaded rules, stores anomalies and snapshots in the state store. Runs at DETECTOR_NICE (normal by default:
// detection latency matters); during an ingest burst it defers (bounded) rather than slowing acknowledgements.
import { BroadcastChannel, parentPort, workerData } from 'node:worker_threads';
import { Histogram, Counter, Gauge, Registry } from 'prom-client';
import { openWorkerBus, type WorkerBusData } from '../bus/open-bus.js';
import { PressureGauge, type DeferPolicy } from '../bus/ingest-pressure.js';
import { lowerThisThread, type ConsumerWorkerMessage } from '../bus/consumer-thread.js';
import { createLogger } from '../obs/logger.js';
import { openStateStores } from '../state/stores.js';
import { OUTBOX_CHANNEL } from '../react/dispatcher.js';
import type { EnqueueResult } from '../react/outbox-store.js';
import { DetectorConsumer } from './detector-consumer.js';
import { readAnyEventsFile } from './event-file.js';
import { DetectionEngine } from './engine.js';
import { watchRules } from './rules-loader.js';

export interface DetectorWorkerData {
  /** Bus consumer and snapshot name (detectorConsumerName). */
  consumer: string;
  statePath: string;
  /** PostgreSQL state store instead of the SQLite file at `statePath`. */
  databaseUrl?: string | null;
  rulesDir: string;
  logLevel: string;
  nice: number;
  snapshotEveryMs: number;
  deferral: { buffer: SharedArrayBuffer; policy: DeferPolicy };
  /** Known-good events (JSONL or Parquet) to learn from on the first start. */
  warmFrom: string | null;
}

async function main(): Promise<void> {
  const d = workerData as DetectorWorkerData & WorkerBusData;
  const port = parentPort!;
  lowerThisThread(d.nice);
  const log = createLogger(d.logLevel, 'causality-detector');
  const registry = new Registry();
  const latency = new Histogram({
    name: 'causality_detector_latency_seconds',
    help: 'server receipt of an event → its anomaly stored',
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2, 5],
    registers: [registry],
  });
  const stored = new Counter({ name: 'causality_anomalies_stored_total', help: 'anomalies stored, by source and severity', labelNames: ['source', 'severity'], registers: [registry] });
  const events = new Gauge({ name: 'causality_detector_events', help: 'events scored since start', registers: [registry] });
  const rulesGauge = new Gauge({ name: 'causality_detector_rules', help: 'rules in force', registers: [registry] });
  const warmed = new Gauge({ name: 'causality_detector_warmed_events', help: 'known-good events learned from at this start (DETECTOR_WARM_FROM; first start only)', registers: [registry] });
  const ruleErrors = new Counter({ name: 'causality_detector_rule_errors_total', help: 'rule files that failed to load (previous rules kept)', registers: [registry] });

  const enqueued = new Counter({
    name: 'causality_webhook_alerts_enqueued_total',
    help: 'Anomalies put in the webhook outbox: as a new alert (created) or counted into one not yet sent (grouped)',
    labelNames: ['result'],
    registers: [registry],
  });

  // SQLite NORMAL (WAL): a power cut may roll back the newest anomalies, but their snapshot position rolls back with
  // them in the same file, so the replay raises them again under the same ids; meanwhile no fsync sits on the scoring
  // path. PostgreSQL commits durably (its own settings).
  const state = await openStateStores({
    databaseUrl: d.databaseUrl ?? null,
    statePath: d.statePath,
    sqliteSynchronous: 'NORMAL',
    poolSize: 2,
    onIdleError: (err) => log.warn({ err }, 'detector: a state-store connection failed while idle'),
  });
  const outboxSignal = new BroadcastChannel(OUTBOX_CHANNEL);
  outboxSignal.unref();
  let lastEnqueue: EnqueueResult | null = null;
  const engine = new DetectionEngine();
  const snapshots = state.snapshots;
  const watcher = watchRules(d.rulesDir, {
    onRules: (rules) => {
      engine.setRules(rules);
      rulesGauge.set(rules.length);
      log.info({ rules: rules.length, dir: d.rulesDir }, 'detector: rules loaded');
    },
    onError: (err) => {
      ruleErrors.inc();
      log.error({ file: err.file, error: err.message }, 'detector: a rules file failed; its previous rules stay in force');
    },
  });
  // First start only (no snapshot yet): learn from known-good traffic before scoring live events. After the rules
  // are loaded, so their state (an absence rule's marks, windows) learns too.
  if (d.warmFrom && !(await snapshots.load(d.consumer))) {
    const started = Date.now();
    const { events, report } = await readAnyEventsFile(d.warmFrom);
    for (const ev of events) engine.learn(ev);
    warmed.set(events.length);
    log.info({ file: d.warmFrom, events: events.length, invalid: report.invalid, ms: Date.now() - started }, 'detector: warmed from known-good events');
  }
  const consumer = new DetectorConsumer({
    bus: await openWorkerBus(d),
    consumer: d.consumer,
    engine,
    // Webhook deliveries are written in the anomaly's own transaction.
    anomalies: state.anomaliesWithOutbox((r) => {
      lastEnqueue = r;
    }),
    snapshots,
    log,
    snapshotEveryMs: d.snapshotEveryMs,
    defer: new PressureGauge(d.deferral.buffer, d.deferral.policy),
    onStored: (fresh, ms) => {
      for (let i = 0; i < fresh.length; i++) {
        latency.observe(ms[i]! / 1000);
        stored.inc({ source: fresh[i]!.source, severity: fresh[i]!.severity });
      }
      // Committed: tell this process's dispatchers (after the transaction, so they find the rows).
      const q = lastEnqueue as EnqueueResult | null;
      lastEnqueue = null;
      if (q && (q.created.length || q.grouped.length)) {
        enqueued.inc({ result: 'created' }, q.created.length);
        enqueued.inc({ result: 'grouped' }, q.grouped.length);
        for (const c of q.created) log.debug({ anomalyId: c.anomalyId, deliveryId: c.deliveryId, endpointId: c.endpointId }, 'webhooks: delivery enqueued');
        if (q.created.length) outboxSignal.postMessage('enqueued');
      }
    },
  });
  await consumer.start();
  port.on('message', async (m: { type: string }) => {
    if (m.type === 'metrics') {
      events.set(consumer.stats.events);
      port.postMessage({ type: 'metrics', json: await registry.getMetricsAsJSON() } satisfies ConsumerWorkerMessage);
    }
    if (m.type === 'stop') {
      watcher.close();
      outboxSignal.close();
      await consumer.stop();
      await state.close();
      port.postMessage({ type: 'stopped' } satisfies ConsumerWorkerMessage);
    }
  });
  port.postMessage({ type: 'ready' } satisfies ConsumerWorkerMessage);
}

main().catch((err: Error) => parentPort!.postMessage({ type: 'fatal', message: err.stack ?? err.message } satisfies ConsumerWorkerMessage));
