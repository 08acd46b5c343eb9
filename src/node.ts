// One Causality process: opens the embedded bus, the warehouse and the query engine, and serves HTTP.
// `causality up` runs every role here; roles split across processes in the scale-out issue.
import { PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { AggregatorRegistry } from 'prom-client';
import type { Config, Role } from './config.js';
import type { Bus } from './bus/bus.js';
import { SegmentedLog } from './bus/segmented-log.js';
import { natsBusSpec, openBus } from './bus/open-bus.js';
import { HttpError, installErrorHandler } from './http/errors.js';
import { registerOpenApi } from './http/openapi.js';
import { VERSION } from './version.js';
import { EventIdDedupe } from './ingest/dedupe.js';
import { apiKeyOf, createAuthenticator } from './ingest/edge.js';
import { createIngestPipeline, warmDedupe } from './ingest/pipeline.js';
import { registerIngestRoutes } from './ingest/routes.js';
import { parseJsonBody } from './ingest/check-body.js';
import { CheckPool } from './ingest/check-pool.js';
import { installProtobufParser, PROTO_FILE } from './ingest/protobuf.js';
import { createLogger, type Logger } from './obs/logger.js';
import { createMetrics, type Metrics } from './obs/metrics.js';
import { QueryService } from './query/query-service.js';
import { registerQueryRoutes } from './query/routes.js';
import { registerUiRoutes } from './ui/routes.js';
import { warehouseEventReader } from './detect/event-file.js';
import { registerTrackerRoutes } from './tracker/routes.js';
import { DuckEngine } from './warehouse/duckdb.js';
import { openWarehouseFiles } from './warehouse/files.js';
import { ConsumerThread } from './bus/consumer-thread.js';
import { IngestPressure } from './bus/ingest-pressure.js';
import { SINK_CONSUMER } from './warehouse/sink.js';
import { anomalyTable, type AnomalyStore } from './detect/anomaly-store.js';
import { detectorConsumerName } from './detect/detector-consumer.js';
import type { DetectorWorkerData } from './detect/detector-worker.js';
import { registerDetectRoutes } from './detect/routes.js';
import { startReactions, type Reactions } from './react/reactions.js';
import { registerCausalRoutes } from './causal/routes.js';
import { SeriesScheduler } from './causal/scheduler.js';
import { CausalService } from './causal/service.js';
import { seedRulesDir } from './detect/rules-loader.js';
import { openStateStores } from './state/stores.js';
import type { SinkWorkerData } from './warehouse/sink-worker.js';
import { Warehouse } from './warehouse/warehouse.js';

/**
 * A running process. Parts of roles this process does not run throw when asked for (`causality serve --role`); a
 * process from `causality up` has them all.
 */
export interface RunningNode {
  roles: ReadonlySet<Role>;
  app: FastifyInstance;
  url: string;
  /** The embedded log, or a JetStream stream when CAUSALITY_BUS is set. */
  bus: Bus;
  sink: ConsumerThread<SinkWorkerData>;
  warehouse: Warehouse;
  queries: QueryService;
  metrics: Metrics;
  log: Logger;
  /** The detector's thread (null with DETECTOR=off) and the anomalies it stored. */
  detector: ConsumerThread<DetectorWorkerData> | null;
  anomalies: AnomalyStore;
  /** Webhook endpoints, the outbox and its dispatcher. */
  reactions: Reactions;
  /** Every route registered, as `METHOD /path` (the OpenAPI test checks each is documented). */
  routes: string[];
  /** Flushes everything accepted so far to the warehouse (tests, CLI). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Accepts JSON sent as application/json or text/plain (browsers' no-preflight form), keeping the raw bytes (HMAC, the
 * log). With `parse: false` the body stays a Buffer: the ingest routes parse and check it themselves (in the check
 * worker when large), so they get their own encapsulated context with that parser.
 */
export function installJsonParser(app: FastifyInstance, parse: boolean): void {
  app.removeAllContentTypeParsers();
  const parser = (req: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void) => {
    req.rawBody = body;
    if (!parse) return done(null, body);
    try {
      done(null, parseJsonBody(body));
    } catch (e) {
      done(e as Error);
    }
  };
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer' }, (req, body, done) => parser(req, body as Buffer, done));
  app.addContentTypeParser(/^application\/[\w.+-]*json$/, { parseAs: 'buffer' }, (req, body, done) => parser(req, body as Buffer, done));
}

/**
 * `Content-Encoding: gzip | deflate | br` request bodies (SDKs compress batches) are decoded before parsing; the body
 * limit applies to the decoded size (a zip bomb gets 413). Anything else but identity is 415.
 */
export function installBodyDecoding(app: FastifyInstance): void {
  // Hooks of every request are callback-style: an async hook costs each request a promise and a microtask turn.
  app.addHook('preParsing', (req, _reply, payload, done) => {
    const enc = req.headers['content-encoding']?.trim().toLowerCase();
    if (!enc || enc === 'identity') return done(null, payload);
    const decoder = enc === 'gzip' || enc === 'x-gzip' ? zlib.createGunzip() : enc === 'deflate' ? zlib.createInflate() : enc === 'br' ? zlib.createBrotliDecompress() : null;
    if (!decoder) return done(new HttpError(415, 'unsupported_encoding', `Content-Encoding ${enc} is not supported (gzip, deflate, br, identity)`, 'Content-Encoding'));
    const body = new PassThrough();
    // Fastify compares the encoded length with Content-Length, and the body limit with the decoded length.
    Object.defineProperty(body, 'receivedEncodedLength', { get: () => decoder.bytesWritten });
    payload.on('error', (err) => body.destroy(err));
    decoder.on('error', (err) => body.destroy(new HttpError(400, 'invalid_encoding', `body is not valid ${enc} data: ${err.message}`, 'Content-Encoding')));
    payload.pipe(decoder).pipe(body);
    done(null, body);
  });
}

export async function startNode(config: Config, opts: { log?: Logger; listen?: boolean } = {}): Promise<RunningNode> {
  const log = opts.log ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const roles: ReadonlySet<Role> = new Set(config.roles);
  const has = (r: Role) => roles.has(r);
  if (config.detectorPartition !== null && config.detectorPartition >= config.busPartitions) {
    throw new Error(`DETECTOR_PARTITION ${config.detectorPartition} is outside 0..${config.busPartitions - 1} (BUS_PARTITIONS=${config.busPartitions})`);
  }
  const bus = await openBus(config, {
    onFsync: (seconds, records) => {
      metrics.fsyncSeconds.observe(seconds);
      metrics.fsyncRecords.observe(records);
    },
  });
  // On NATS the consumer threads connect themselves, bound to their durable consumers.
  const nats = natsBusSpec(config);
  if (bus instanceof SegmentedLog && bus.recoveredTruncatedBytes > 0) log.warn({ bytes: bus.recoveredTruncatedBytes }, 'log recovery: truncated a torn tail (never acknowledged)');

  // Ingest remembers the ids it appended (rebuilt from the bus), so retries are answered `duplicate`.
  const dedupe = has('ingest') ? new EventIdDedupe(config.dedupeWindowEvents) : null;
  const warmed = dedupe ? await warmDedupe(bus, dedupe, config.dedupeWindowEvents) : 0;

  const stagingDir = join(config.dataDir, 'staging');
  const filesSettings = { dataDir: config.dataDir, s3: config.s3, s3CacheBytes: config.s3CacheBytes };
  const files = has('sink') || has('query') ? await openWarehouseFiles(filesSettings, has('query') ? metrics.registry : undefined) : null;
  // Above a burst rate the background consumers defer (bounded), so acknowledgements keep the machine.
  const pressure = new IngestPressure();
  const deferral = { buffer: pressure.buffer, policy: { aboveEventsPerSecond: config.deferAboveEventsPerSecond, maxDeferMs: config.maxDeferMs } };
  const sink = has('sink')
    ? new ConsumerThread<SinkWorkerData>({
        consumer: SINK_CONSUMER,
        workerUrl: new URL('./warehouse/sink-worker.js', import.meta.url),
        bus,
        nats,
        log,
        data: {
          files: filesSettings,
          stagingDir: join(stagingDir, 'sink'),
          batchMaxEvents: config.batchMaxEvents,
          flushIntervalMs: config.batchFlushIntervalMs,
          logLevel: config.logLevel,
          nice: config.backgroundNice,
          deferral,
        },
      })
    : null;
  await sink?.start();
  // Without a sink here, the sink's position (which files are committed) is read from the bus.
  let remoteSinkPosition = 0;
  const readSinkPosition = async () => {
    remoteSinkPosition = Math.max(remoteSinkPosition, await bus.committed(SINK_CONSUMER));
  };
  const sinkPosition = () => sink?.committedOffset ?? remoteSinkPosition;
  let sinkPoll: NodeJS.Timeout | null = null;
  if (!sink && has('query')) {
    await readSinkPosition();
    sinkPoll = setInterval(() => void readSinkPosition().catch((err) => log.warn({ err }, 'could not read the sink position')), 1_000);
    sinkPoll.unref();
  }

  // State: anomalies, snapshots, webhooks and their outbox, metric-crash state (<dataDir>/state.db, or PostgreSQL
  // with DATABASE_URL). The detector's thread opens its own connection.
  const statePath = join(config.dataDir, 'state.db');
  const state =
    has('detect') || has('react') || has('query')
      ? await openStateStores({
          databaseUrl: config.databaseUrl,
          statePath,
          groupWindowMs: config.webhookGroupWindowMs,
          onIdleError: (err) => log.warn({ err }, 'state store: a connection failed while idle'),
        })
      : null;
  // Reactions: outbox tables and config endpoints ready before the detector writes deliveries; the dispatcher runs in
  // the react role only, the webhooks API in the query role.
  const reactions =
    state && (has('react') || has('query') || has('detect'))
      ? await startReactions({ config: has('react') ? config : { ...config, dispatcherWorkers: 0 }, statePath, state, registry: metrics.registry, log })
      : null;
  if (has('detect') || has('query')) seedRulesDir(config.rulesDir);
  const detectorName = detectorConsumerName(config.detectorPartition);
  const detector =
    has('detect') && config.detectorEnabled
      ? new ConsumerThread<DetectorWorkerData>({
          consumer: detectorName,
          workerUrl: new URL('./detect/detector-worker.js', import.meta.url),
          bus,
          nats: nats && config.detectorPartition !== null ? { ...nats, partition: config.detectorPartition } : nats,
          log,
          data: {
            consumer: detectorName,
            statePath,
            databaseUrl: config.databaseUrl,
            rulesDir: config.rulesDir,
            logLevel: config.logLevel,
            nice: config.detectorNice,
            snapshotEveryMs: config.detectorSnapshotMs,
            deferral,
            warmFrom: config.detectorWarmFrom,
          },
        })
      : null;
  await detector?.start();
  // The query engine (and compaction) share one DuckDB on this thread; the sink has its own in its worker.
  const engine = files ? await DuckEngine.create({ allowedDirectories: [files.readableRoot, stagingDir] }) : null;
  const warehouse = engine && files ? new Warehouse(engine, files, sinkPosition, join(stagingDir, 'compact'), metrics, log) : null;
  const queries = warehouse && engine && has('query') ? new QueryService(engine, warehouse, metrics) : null;
  if (queries && state) queries.addSideTable('anomalies', anomalyTable(state.anomalies));

  // One compactor: the process that runs the sink.
  const compactTimer = sink
    ? setInterval(() => {
        warehouse?.compact(config.compactMinFiles).catch((err) => log.error({ err }, 'compaction failed'));
      }, 10_000)
    : null;
  compactTimer?.unref();

  const app = Fastify({
    bodyLimit: config.maxBodyBytes,
    trustProxy: config.trustedProxies.length ? config.trustedProxies : false,
    // Our pino instance, so req.log lines (errors) carry the request id; per-request access logs are off (hot path).
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => (typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'].slice(0, 64) : crypto.randomUUID()),
  });
  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD' && m !== 'OPTIONS') routes.push(`${m} ${r.url}`);
  });
  app.decorateRequest('principal', undefined);
  app.decorateRequest('rawBody', undefined);
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    done(null, payload);
  });
  installErrorHandler(app);
  installBodyDecoding(app);
  installJsonParser(app, true);
  await app.register(cors, {
    origin: config.corsOrigins.includes('*') ? true : config.corsOrigins,
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['content-type', 'content-encoding', 'x-api-key', 'x-ta-api-key', 'authorization', 'x-causality-signature', 'x-causality-timestamp', 'x-request-id'],
    maxAge: 600,
  });
  if (config.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (req) => apiKeyOf(req) ?? req.ip,
      allowList: (req) => req.url === '/healthz' || req.url === '/metrics',
      errorResponseBuilder: (_req, ctx) => {
        metrics.requestsRefused.inc({ status: '429', code: 'rate_limited' });
        return Object.assign(new HttpError(429, 'rate_limited', `more than ${ctx.max} requests per minute for this key; retry after ${ctx.after}`), {
          statusCode: 429,
        });
      },
    });
  }
  app.addHook('onResponse', (req, reply, done) => {
    if (reply.statusCode >= 400 && req.url.startsWith('/v1/')) {
      metrics.requestsRefused.inc({ status: String(reply.statusCode), code: 'http' });
    }
    done();
  });

  const authenticate = createAuthenticator(config);
  // One check worker: on 2 cores it pairs with the event loop; more would only compete with it.
  const checkPool = dedupe ? new CheckPool(1) : null;
  if (dedupe && checkPool) {
    const ingestEvents = createIngestPipeline({ bus, dedupe, metrics, pressure });
    await app.register(async (ingest) => {
      installJsonParser(ingest, false);
      installProtobufParser(ingest);
      registerIngestRoutes(ingest, { config, metrics, ingestEvents, authenticate, checkPool });
    });
    registerTrackerRoutes(app);
  }
  let seriesScheduler: SeriesScheduler | null = null;
  if (queries && warehouse && state && reactions) {
    registerQueryRoutes(app, { config, queries, authenticate, saved: state.savedQueries });
    registerDetectRoutes(app, { anomalies: state.anomalies, rulesDir: config.rulesDir, authenticate, readEvents: warehouseEventReader(warehouse) });
    reactions.registerRoutes(app, authenticate);
    // Metric crashes: series (pushed, or SQL over the warehouse on a schedule), changes, incidents, impact.
    const runSql = async (sql: string, appId?: string) =>
      queries.run(sql, { appId: appId ?? null, rowLimit: config.queryRowLimit, timeoutMs: config.queryTimeoutMs, endpoint: 'series' });
    const causalStore = state.causal;
    const causal = new CausalService({ store: causalStore, log, risk: config.risk, llm: config.riskLlm });
    registerCausalRoutes(app, { authenticate, store: causalStore, runSql, service: causal, webhookSecrets: config.changeWebhookSecrets });
    seriesScheduler = new SeriesScheduler({ store: causalStore, runSql, service: causal, log });
    seriesScheduler.start();
    registerUiRoutes(app);
  }

  app.get('/healthz', async () => ({
    status: 'ok',
    roles: [...roles],
    bus: { kind: nats ? 'nats' : 'embedded', endOffset: bus.endOffset(), startOffset: bus.startOffset() },
    sink: sink || queries ? { committedOffset: sinkPosition(), lag: Math.max(0, bus.endOffset() - sinkPosition()) } : null,
    detector: detector ? { consumer: detectorName, committedOffset: detector.committedOffset, lag: Math.max(0, bus.endOffset() - detector.committedOffset) } : null,
  }));
  app.get('/metrics', async (_req, reply) => {
    metrics.busEndOffset.set(bus.endOffset());
    if (sink || queries) metrics.consumerLag.set({ consumer: SINK_CONSUMER }, Math.max(0, bus.endOffset() - sinkPosition()));
    if (detector) metrics.consumerLag.set({ consumer: detectorName }, Math.max(0, bus.endOffset() - detector.committedOffset));
    reply.header('content-type', metrics.registry.contentType);
    const workers = [...(sink ? [await sink.metricsJson()] : []), ...(detector ? [await detector.metricsJson()] : [])];
    const merged = AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), ...workers]);
    return merged.metrics();
  });
  app.get('/', async () => ({ name: 'causality', docs: 'see README.md', health: '/healthz', metrics: '/metrics', openapi: '/openapi.json', proto: '/proto/events.proto' }));
  const protoText = readFileSync(PROTO_FILE, 'utf8');
  app.get('/proto/events.proto', async (_req, reply) => reply.type('text/plain; charset=utf-8').send(protoText));
  await registerOpenApi(app, VERSION);

  await checkPool?.ready;

  let url = '';
  if (opts.listen !== false) {
    url = await app.listen({ host: config.host, port: config.port });
  }
  log.info({ url, roles: [...roles], dataDir: config.dataDir, endOffset: bus.endOffset(), dedupeWarmed: warmed }, 'causality is up');

  let closed = false;
  const present = <T>(part: T | null, role: Role): T => {
    if (part === null) throw new Error(`this process does not run the ${role} role (roles: ${[...roles].join(', ')})`);
    return part;
  };
  return {
    roles,
    app,
    url,
    bus,
    get sink() {
      return present(sink, 'sink');
    },
    get warehouse() {
      return present(warehouse, has('sink') ? 'sink' : 'query');
    },
    get queries() {
      return present(queries, 'query');
    },
    metrics,
    log,
    routes,
    detector,
    get anomalies() {
      return present(state, 'query').anomalies;
    },
    get reactions() {
      return present(reactions, 'react');
    },
    async flush() {
      await present(sink, 'sink').drainTo(bus.endOffset());
    },
    async close() {
      if (closed) return;
      closed = true;
      if (compactTimer) clearInterval(compactTimer);
      if (sinkPoll) clearInterval(sinkPoll);
      await seriesScheduler?.stop();
      await app.close(); // stops accepting; in-flight requests finish (their appends complete)
      await checkPool?.close();
      await sink?.stop(); // flushes what is on the bus to Parquet
      await detector?.stop(); // snapshots its models
      await bus.close();
      await reactions?.stop(); // in-flight webhook claims are given back
      await state?.close();
      queries?.close();
      engine?.close();
      files?.close();
      log.info('causality stopped');
    },
  };
}
