// The reactions role in one place: the outbox tables (migrated, config-file endpoints synced) before the detector
// starts writing deliveries, the dispatcher on its own state-store connection, its metrics, and the HTTP routes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import { SqliteAnomalyStore } from '../detect/anomaly-store.js';
import type { Principal } from '../ingest/edge.js';
import type { Logger } from '../obs/logger.js';
import { openSqlite, type SqliteDb } from '../state/sqlite.js';
import { createReactMetrics, Dispatcher, registerOutboxGauges } from './dispatcher.js';
import { SqliteOutboxStore } from './outbox-store.js';
import { registerReactRoutes } from './routes.js';
import type { WebhookEndpoint } from './webhook.js';

export interface Reactions {
  /** The outbox on the node's main state-store connection (API, config sync). */
  store: SqliteOutboxStore;
  /** Null with DISPATCHER_WORKERS=0 (another process delivers). */
  dispatcher: Dispatcher | null;
  registerRoutes(app: FastifyInstance, authenticate: (req: FastifyRequest) => Principal): void;
  stop(): Promise<void>;
}

const DELIVERED_RETENTION_MS = 7 * 86_400_000;

export async function startReactions(o: { config: Config; statePath: string; stateDb: SqliteDb; registry: Registry; log: Logger }): Promise<Reactions> {
  const { config, log } = o;
  const store = new SqliteOutboxStore(o.stateDb, { groupWindowMs: config.webhookGroupWindowMs });
  const t = Date.now();
  const fromConfig: WebhookEndpoint[] = config.webhooks.map((w) => ({
    id: w.id,
    url: w.url,
    secret: w.secret,
    format: w.format ?? 'json',
    filters: w.filters ?? {},
    enabled: w.enabled ?? true,
    description: w.description ?? null,
    maxPerMinute: w.maxPerMinute ?? null,
    origin: 'config',
    createdAt: t,
    updatedAt: t,
  }));
  await store.syncConfigEndpoints(fromConfig);
  registerOutboxGauges(o.registry, store);

  let dispatchDb: SqliteDb | null = null;
  let dispatcher: Dispatcher | null = null;
  let pruneTimer: NodeJS.Timeout | null = null;
  if (config.dispatcherWorkers > 0) {
    // Its own connection, synchronous=NORMAL: a delivery's outcome lost to a power cut is only sent again (same id).
    dispatchDb = openSqlite(o.statePath);
    dispatchDb.pragma('synchronous = NORMAL');
    const dispatchStore = new SqliteOutboxStore(dispatchDb);
    dispatcher = new Dispatcher({
      store: dispatchStore,
      anomalies: new SqliteAnomalyStore(dispatchDb),
      workers: config.dispatcherWorkers,
      timeoutMs: config.webhookTimeoutMs,
      maxAttempts: config.webhookMaxAttempts,
      backoff: { baseMs: config.webhookBackoffBaseMs, maxMs: config.webhookBackoffMaxMs },
      log: log.child({ role: 'webhooks' }),
      metrics: createReactMetrics(o.registry),
    });
    dispatcher.start();
    pruneTimer = setInterval(() => {
      dispatchStore.prune(Date.now() - DELIVERED_RETENTION_MS, Date.now()).catch((err) => log.error({ err }, 'webhooks: pruning failed'));
    }, 600_000);
    pruneTimer.unref();
  }
  const endpoints = await store.listEndpoints();
  log.info({ endpoints: endpoints.length, dispatcherWorkers: config.dispatcherWorkers }, 'webhooks: ready');

  return {
    store,
    dispatcher,
    registerRoutes(app, authenticate) {
      registerReactRoutes(app, { store, authenticate, wake: () => dispatcher?.wake() });
    },
    async stop() {
      if (pruneTimer) clearInterval(pruneTimer);
      await dispatcher?.stop();
      dispatchDb?.close();
    },
  };
}
