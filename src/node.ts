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
import type { Config } from './config.js';
import { SegmentedLog } from './bus/segmented-log.js';
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
import { SqliteSavedQueryStore } from './query/saved-queries.js';
import { registerUiRoutes } from './ui/routes.js';
import { warehouseEventReader } from './detect/event-file.js';
import { registerTrackerRoutes } from './tracker/routes.js';
import { DuckEngine } from './warehouse/duckdb.js';
import { LocalWarehouseFiles } from './warehouse/files.js';
import { ConsumerThread } from './bus/consumer-thread.js';
import { IngestPressure } from './bus/ingest-pressure.js';
import { SINK_CONSUMER } from './warehouse/sink.js';
import { anomalyTable, SqliteAnomalyStore } from './detect/anomaly-store.js';
import { DETECTOR_CONSUMER } from './detect/detector-consumer.js';
import type { DetectorWorkerData } from './detect/detector-worker.js';
import { registerDetectRoutes } from './detect/routes.js';
import { startReactions, type Reactions } from './react/reactions.js';
import { registerCausalRoutes } from './causal/routes.js';
import { SeriesScheduler } from './causal/scheduler.js';
import { CausalService } from './causal/service.js';
import { SqliteCausalStore } from './causal/store.js';
import { seedRulesDir } from './detect/rules-loader.js';
import { openSqlite } from './state/sqlite.js';
import type { SinkWorkerData } from './warehouse/sink-worker.js';
import { Warehouse } from './warehouse/warehouse.js';

export interface RunningNode {
  app: FastifyInstance;
  url: string;
  bus: SegmentedLog;
  sink: ConsumerThread<SinkWorkerData>;
  warehouse: Warehouse;
  queries: QueryService;
  metrics: Metrics;
  log: Logger;
  /** The detector's thread (null with DETECTOR=off) and the anomalies it stored. */
  detector: ConsumerThread<DetectorWorkerData> | null;
  anomalies: SqliteAnomalyStore;
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
  app.addHook('preParsing', async (req, _reply, payload) => {
    const enc = req.headers['content-encoding']?.trim().toLowerCase();
    if (!enc || enc === 'identity') return payload;
    const decoder = enc === 'gzip' || enc === 'x-gzip' ? zlib.createGunzip() : enc === 'deflate' ? zlib.createInflate() : enc === 'br' ? zlib.createBrotliDecompress() : null;
    if (!decoder) throw new HttpError(415, 'unsupported_encoding', `Content-Encoding ${enc} is not supported (gzip, deflate, br, identity)`, 'Content-Encoding');
    const body = new PassThrough();
    // Fastify compares the encoded length with Content-Length, and the body limit with the decoded length.
    Object.defineProperty(body, 'receivedEncodedLength', { get: () => decoder.bytesWritten });
    payload.on('error', (err) => body.destroy(err));
    decoder.on('error', (err) => body.destroy(new HttpError(400, 'invalid_encoding', `body is not valid ${enc} data: ${err.message}`, 'Content-Encoding')));
    payload.pipe(decoder).pipe(body);
    return body;
  });
}

export async function startNode(config: Config, opts: { log?: Logger; listen?: boolean } = {}): Promise<RunningNode> {
  const log = opts.log ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const bus = await SegmentedLog.open({
    dir: join(config.dataDir, 'log'),
    segmentBytes: config.segmentBytes,
    retentionMs: config.retentionHours * 3_600_000,
    retentionBytes: config.retentionBytes > 0 ? config.retentionBytes : Infinity,
    onFsync: (seconds, records) => {
      metrics.fsyncSeconds.observe(seconds);
      metrics.fsyncRecords.observe(records);
    },
  });
  if (bus.recoveredTruncatedBytes > 0) log.warn({ bytes: bus.recoveredTruncatedBytes }, 'log recovery: truncated a torn tail (never acknowledged)');

  const dedupe = new EventIdDedupe(config.dedupeWindowEvents);
  const warmed = await warmDedupe(bus, dedupe, config.dedupeWindowEvents);

  const warehouseDir = join(config.dataDir, 'warehouse');
  const stagingDir = join(config.dataDir, 'staging');
  const files = new LocalWarehouseFiles(warehouseDir);
  // Above a burst rate the background consumers defer (bounded), so acknowledgements keep the machine.
  const pressure = new IngestPressure();
  const deferral = { buffer: pressure.buffer, policy: { aboveEventsPerSecond: config.deferAboveEventsPerSecond, maxDeferMs: config.maxDeferMs } };
  const sink = new ConsumerThread<SinkWorkerData>({
    consumer: SINK_CONSUMER,
    workerUrl: new URL('./warehouse/sink-worker.js', import.meta.url),
    bus,
    log,
    data: {
      warehouseDir,
      stagingDir: join(stagingDir, 'sink'),
      batchMaxEvents: config.batchMaxEvents,
      flushIntervalMs: config.batchFlushIntervalMs,
      logLevel: config.logLevel,
      nice: config.backgroundNice,
      deferral,
    },
  });
  await sink.start();

  // Detection: the detector consumes the log in its own thread; the API reads its anomalies from the state store.
  const statePath = join(config.dataDir, 'state.db');
  const stateDb = openSqlite(statePath);
  const anomalies = new SqliteAnomalyStore(stateDb);
  // Reactions: outbox tables and config endpoints ready before the detector writes deliveries; dispatcher started.
  const reactions = await startReactions({ config, statePath, stateDb, registry: metrics.registry, log });
  seedRulesDir(config.rulesDir);
  const detector = config.detectorEnabled
    ? new ConsumerThread<DetectorWorkerData>({
        consumer: DETECTOR_CONSUMER,
        workerUrl: new URL('./detect/detector-worker.js', import.meta.url),
        bus,
        log,
        data: { statePath, rulesDir: config.rulesDir, logLevel: config.logLevel, nice: config.detectorNice, snapshotEveryMs: config.detectorSnapshotMs, deferral, warmFrom: config.detectorWarmFrom },
      })
    : null;
  await detector?.start();
  // The query engine (and compaction) share one DuckDB on this thread; the sink has its own in its worker.
  const engine = await DuckEngine.create({ allowedDirectories: [warehouseDir, stagingDir] });
  const warehouse = new Warehouse(engine, files, () => sink.committedOffset, join(stagingDir, 'compact'), metrics, log);
  const queries = new QueryService(engine, warehouse, metrics);
  queries.addSideTable('anomalies', anomalyTable(anomalies));

  const compactTimer = setInterval(() => {
    warehouse.compact(config.compactMinFiles).catch((err) => log.error({ err }, 'compaction failed'));
  }, 10_000);
  compactTimer.unref();

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
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
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
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 400 && req.url.startsWith('/v1/')) {
      metrics.requestsRefused.inc({ status: String(reply.statusCode), code: 'http' });
    }
  });

  const authenticate = createAuthenticator(config);
  const ingestEvents = createIngestPipeline({ bus, dedupe, metrics, pressure });
  // One check worker: on 2 cores it pairs with the event loop; more would only compete with it.
  const checkPool = new CheckPool(1);
  await app.register(async (ingest) => {
    installJsonParser(ingest, false);
    installProtobufParser(ingest);
    registerIngestRoutes(ingest, { config, metrics, ingestEvents, authenticate, checkPool });
  });
  registerQueryRoutes(app, { config, queries, authenticate, saved: new SqliteSavedQueryStore(stateDb) });
  registerDetectRoutes(app, { anomalies, rulesDir: config.rulesDir, authenticate, readEvents: warehouseEventReader(warehouse) });
  reactions.registerRoutes(app, authenticate);
  // Metric crashes: series (pushed, or SQL over the warehouse on a schedule), changes, incidents, impact.
  const runSql = async (sql: string, appId?: string) =>
    queries.run(sql, { appId: appId ?? null, rowLimit: config.queryRowLimit, timeoutMs: config.queryTimeoutMs, endpoint: 'series' });
  const causalStore = new SqliteCausalStore(stateDb);
  const causal = new CausalService({ store: causalStore, log, risk: config.risk, llm: config.riskLlm });
  registerCausalRoutes(app, { authenticate, store: causalStore, runSql, service: causal, webhookSecrets: config.changeWebhookSecrets });
  const seriesScheduler = new SeriesScheduler({ store: causalStore, runSql, service: causal, log });
  seriesScheduler.start();
  registerTrackerRoutes(app);
  registerUiRoutes(app);

  app.get('/healthz', async () => ({
    status: 'ok',
    bus: { endOffset: bus.endOffset(), startOffset: bus.startOffset() },
    sink: { committedOffset: sink.committedOffset, lag: bus.endOffset() - sink.committedOffset },
    detector: detector ? { committedOffset: detector.committedOffset, lag: bus.endOffset() - detector.committedOffset } : null,
  }));
  app.get('/metrics', async (_req, reply) => {
    metrics.busEndOffset.set(bus.endOffset());
    metrics.consumerLag.set({ consumer: SINK_CONSUMER }, bus.endOffset() - sink.committedOffset);
    if (detector) metrics.consumerLag.set({ consumer: DETECTOR_CONSUMER }, bus.endOffset() - detector.committedOffset);
    reply.header('content-type', metrics.registry.contentType);
    const merged = AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), await sink.metricsJson(), ...(detector ? [await detector.metricsJson()] : [])]);
    return merged.metrics();
  });
  app.get('/', async () => ({ name: 'causality', docs: 'see README.md', health: '/healthz', metrics: '/metrics', openapi: '/openapi.json', proto: '/proto/events.proto' }));
  const protoText = readFileSync(PROTO_FILE, 'utf8');
  app.get('/proto/events.proto', async (_req, reply) => reply.type('text/plain; charset=utf-8').send(protoText));
  await registerOpenApi(app, VERSION);

  await checkPool.ready;

  let url = '';
  if (opts.listen !== false) {
    url = await app.listen({ host: config.host, port: config.port });
  }
  log.info({ url, dataDir: config.dataDir, endOffset: bus.endOffset(), dedupeWarmed: warmed }, 'causality is up');

  let closed = false;
  return {
    app,
    url,
    bus,
    sink,
    warehouse,
    queries,
    metrics,
    log,
    routes,
    detector,
    anomalies,
    reactions,
    async flush() {
      await sink.drainTo(bus.endOffset());
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(compactTimer);
      await seriesScheduler.stop();
      pressure.close();
      await app.close(); // stops accepting; in-flight requests finish (their appends complete)
      await checkPool.close();
      await sink.stop(); // flushes what is on the bus to Parquet
      await detector?.stop(); // snapshots its models
      await bus.close();
      await reactions.stop(); // in-flight webhook claims are given back
      stateDb.close();
      queries.close();
      engine.close();
      log.info('causality stopped');
    },
  };
}
