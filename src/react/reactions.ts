// The reactions role in one place: the outbox tables (migrated, config-file endpoints synced) before the detector
// starts writing deliveries, the dispatcher on its own state-store connection, its metrics, and the HTTP routes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Principal } from '../ingest/edge.js';
import type { Logger } from '../obs/logger.js';
import { openStateStores, type StateStores } from '../state/stores.js';
import { createReactMetrics, Dispatcher, registerOutboxGauges } from './dispatcher.js';
import type { OutboxStore } from './outbox-store.js';
import { registerReactRoutes } from './routes.js';
import type { WebhookEndpoint } from './webhook.js';

export interface Reactions {
  /** The outbox on the node's main state-store connection (API, config sync). */
  store: OutboxStore;
  /** Null with DISPATCHER_WORKERS=0 (another process delivers). */
  dispatcher: Dispatcher | null;
  registerRoutes(app: FastifyInstance, authenticate: (req: FastifyRequest) => Principal): void;
  stop(): Promise<void>;
}

const DELIVERED_RETENTION_MS = 7 * 86_400_000;

/**
 * @param o.state the node's state stores, opened with the configured group window (their outbox serves the API).
 * @param o.statePath the SQLite file when `config.databaseUrl` is not set (the dispatcher opens its own connection).
 */
export async function startReactions(o: { config: Config; statePath: string; state: StateStores; registry: Registry; log: Logger }): Promise<Reactions> {
  const { config, log } = o;
  const store = o.state.outbox;
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

  let dispatchState: StateStores | null = null;
  let dispatcher: Dispatcher | null = null;
  let pruneTimer: NodeJS.Timeout | null = null;
  if (config.dispatcherWorkers > 0) {
    // Its own connection (pool), SQLite synchronous=NORMAL: a delivery's outcome lost to a power cut is only sent
    // again (same id).
    dispatchState = await openStateStores({
      databaseUrl: config.databaseUrl,
      statePath: o.statePath,
      sqliteSynchronous: 'NORMAL',
      poolSize: config.dispatcherWorkers + 1,
      onIdleError: (err) => log.warn({ err }, 'webhooks: a state-store connection failed while idle'),
    });
    const dispatchStore = dispatchState.outbox;
    dispatcher = new Dispatcher({
      store: dispatchStore,
      anomalies: dispatchState.anomalies,
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
      await dispatchState?.close();
    },
  };
}
