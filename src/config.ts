// Configuration: one typed module, read once. Precedence: CLI flags > environment > config file > defaults.
// Every knob is listed in CONFIG_DOCS (rendered in the README).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { APP_ID_PATTERN } from './event/envelope.js';
import { endpointInputSchema, type EndpointInput } from './react/webhook.js';

export interface AppConfig {
  appId: string;
  key: string;
  /** When set, every ingest request for this app must carry a valid HMAC-SHA256 signature. */
  hmacSecret?: string;
}

/** What a process does (`causality serve --role …`); `causality up` runs them all. */
export const ROLES = ['ingest', 'sink', 'detect', 'react', 'query'] as const;
export type Role = (typeof ROLES)[number];

export interface Config {
  dataDir: string;
  roles: Role[];
  /** The bus partition this process's detector owns (null: every partition). */
  detectorPartition: number | null;
  configPath: string;
  host: string;
  port: number;
  apps: AppConfig[];
  adminKey: string;
  ipSalt: string;
  trustedProxies: string[];
  corsOrigins: string[];
  maxBodyBytes: number;
  maxBatchEvents: number;
  rateLimitPerMinute: number;
  hmacWindowSeconds: number;
  batchMaxEvents: number;
  batchFlushIntervalMs: number;
  compactMinFiles: number;
  queryRowLimit: number;
  queryTimeoutMs: number;
  metricsCacheMs: number;
  dedupeWindowEvents: number;
  segmentBytes: number;
  retentionHours: number;
  retentionBytes: number;
  backgroundNice: number;
  logLevel: string;
  /** Webhook endpoints from the config file / CAUSALITY_WEBHOOKS (read-only over the API), and delivery knobs. */
  webhooks: Array<EndpointInput & { id: string; secret: string }>;
  dispatcherWorkers: number;
  webhookTimeoutMs: number;
  webhookMaxAttempts: number;
  webhookBackoffBaseMs: number;
  webhookBackoffMaxMs: number;
  webhookGroupWindowMs: number;
  /** Live rules (YAML/JSON), hot-reloaded by the detector and written by the rules API. */
  rulesDir: string;
  detectorEnabled: boolean;
  detectorSnapshotMs: number;
  detectorNice: number;
  /** Change risk: component mapping and extra keywords (config file), an optional OpenAI-compatible classifier. */
  risk: { components?: Record<string, { paths?: string[]; keywords?: string[] }>; highKeywords?: string[]; mediumKeywords?: string[] };
  riskLlm: { baseUrl: string; apiKey?: string; model: string; timeoutMs: number } | null;
  /** Secrets that change webhooks from GitHub and Slack are signed with (checked when set). */
  changeWebhookSecrets: { github?: string; slack?: string };
  /** Known-good events to warm the detector's models from on its first start. */
  detectorWarmFrom: string | null;
  deferAboveEventsPerSecond: number;
  maxDeferMs: number;
  /** Distributed backends (scale-out): null keeps the embedded one (segmented log, SQLite, local Parquet). */
  busUrl: string | null;
  busStream: string;
  /** Bus partitions by entity (BUS_PARTITIONS): a detector worker owns one. */
  busPartitions: number;
  databaseUrl: string | null;
  s3: { endpoint: string | null; bucket: string; prefix: string; region: string; accessKeyId?: string; secretAccessKey?: string } | null;
  s3CacheBytes: number;
}

export const CONFIG_DOCS: ReadonlyArray<[env: string, file: string, def: string, doc: string]> = [
  ['CAUSALITY_DATA_DIR', 'dataDir', './data', 'where the log, warehouse and state live (`--data-dir`)'],
  ['CAUSALITY_CONFIG', '-', '<dataDir>/config.yaml', 'config file (`--config`); created with dev keys on first run when no keys are configured'],
  ['CAUSALITY_ROLE', 'roles', 'all', 'roles of this process (`--role`): comma list of `ingest`, `sink`, `detect`, `react`, `query` (docs/deploy.md)'],
  ['DETECTOR_PARTITION', 'detectorPartition', '(all)', 'the bus partition this process\'s detector owns (`--partition`), from 0 to BUS_PARTITIONS − 1'],
  ['HOST', 'host', '0.0.0.0', 'listen address'],
  ['PORT', 'port', '8080', 'listen port (`--port`)'],
  ['CAUSALITY_APP_KEYS', 'apps', '-', '`appA:keyA,appB:keyB`; a key writes and reads its own app only'],
  ['CAUSALITY_ADMIN_KEY', 'adminKey', 'generated', 'admin key: reads every app, writes any app'],
  ['CAUSALITY_HMAC_SECRETS', 'apps[].hmacSecret', '-', '`appA:secret,…`: require `X-Causality-Signature` for these apps'],
  ['IP_HASH_SALT', 'ipSalt', 'generated', 'salt of the IP hash (raw IPs are never stored)'],
  ['TRUSTED_PROXIES', 'trustedProxies', '(none)', 'comma-separated IPs/CIDRs whose `X-Forwarded-For` is believed'],
  ['CORS_ALLOW_ORIGINS', 'corsOrigins', '*', 'comma-separated browser origins allowed to send events'],
  ['MAX_BODY_BYTES', 'maxBodyBytes', '1048576', 'largest request body (413 beyond)'],
  ['MAX_BATCH_EVENTS', 'maxBatchEvents', '1000', 'most events in one batch request'],
  ['RATE_LIMIT_PER_MINUTE', 'rateLimitPerMinute', '60000', 'requests per minute per API key (429 beyond); 0 = off'],
  ['HMAC_WINDOW_SECONDS', 'hmacWindowSeconds', '300', 'signed requests older or newer than this are refused (replay window)'],
  ['BATCH_MAX_EVENTS', 'batchMaxEvents', '50000', 'warehouse sink: events per Parquet write'],
  ['BATCH_FLUSH_INTERVAL', 'batchFlushInterval', '2s', 'warehouse sink: longest wait before a write (`500ms`, `1s`, `30s`, `5m`)'],
  ['COMPACT_MIN_FILES', 'compactMinFiles', '8', 'a partition with this many small files is compacted into one'],
  ['QUERY_ROW_LIMIT', 'queryRowLimit', '10000', 'most rows a SQL query returns'],
  ['QUERY_TIMEOUT_MS', 'queryTimeoutMs', '10000', 'SQL queries are interrupted after this'],
  ['METRICS_CACHE_MS', 'metricsCacheMs', '5000', 'how long `/v1/metrics/*` answers are cached'],
  ['DEDUPE_WINDOW_EVENTS', 'dedupeWindowEvents', '2000000', 'event ids remembered for idempotent ingest (at least this many of the newest)'],
  ['LOG_SEGMENT_BYTES', 'segmentBytes', '67108864', 'bus segment file size'],
  ['LOG_RETENTION_HOURS', 'retentionHours', '168', 'bus retention by age (never past a consumer\'s position)'],
  ['LOG_RETENTION_BYTES', 'retentionBytes', '0 (unlimited)', 'bus retention by size'],
  ['BACKGROUND_NICE', 'backgroundNice', '19', 'Linux: nice value of the warehouse sink\'s thread and the DuckDB threads it starts (ingest keeps its priority); 0 = off'],
  ['LOG_LEVEL', 'logLevel', 'info', 'pino log level'],
  ['RULES_DIR', 'rulesDir', '<dataDir>/rules', 'detection rules (YAML/JSON), hot-reloaded; seeded from the shipped `rules/` when absent'],
  ['DETECTOR', 'detector', 'on', '`off` runs no detector in this process'],
  ['DETECTOR_NICE', 'detectorNice', '0', 'Linux: nice value of the detector thread; 0 keeps ingest → anomaly latency low, higher values favour ingest under bursts'],
  ['CONSUMER_DEFER_ABOVE', 'consumerDeferAbove', '20000', 'ingest events/s above which the sink and the detector defer their work (an ingest burst); 0 = never'],
  ['CONSUMER_MAX_DEFER', 'consumerMaxDefer', '30s', 'longest a record waits for the sink and the detector because of a burst'],
  ['DETECTOR_WARM_FROM', 'detectorWarmFrom', '(none)', 'known-good events (JSONL in the HTTP envelope, or Parquet) the detector learns from on its first start, before scoring'],
  ['-', 'risk', '(defaults)', 'change risk: `components: {name: {paths: [...], keywords: [...]}}`, `highKeywords`, `mediumKeywords` (config file only)'],
  ['RISK_LLM_BASE_URL', 'riskLlm.baseUrl', '(off)', 'an OpenAI-compatible API (…/v1) that classifies change risk; the rules decide when it fails or times out'],
  ['RISK_LLM_API_KEY', 'riskLlm.apiKey', '-', 'its API key'],
  ['RISK_LLM_MODEL', 'riskLlm.model', 'gpt-4o-mini', 'its model'],
  ['RISK_LLM_TIMEOUT', 'riskLlm.timeout', '10s', 'its timeout'],
  ['GITHUB_WEBHOOK_SECRET', 'changeWebhookSecrets.github', '-', 'verify `X-Hub-Signature-256` of GitHub change webhooks'],
  ['SLACK_SIGNING_SECRET', 'changeWebhookSecrets.slack', '-', 'verify Slack request signatures of Slack change webhooks'],
  ['DETECTOR_SNAPSHOT_INTERVAL', 'detectorSnapshotInterval', '60s', 'how often the detector snapshots its models (a restart replays the log since; each snapshot briefly holds scoring)'],
  ['CAUSALITY_WEBHOOKS', 'webhooks', '(none)', 'webhook endpoints (a JSON array in the environment, a list in the file): `id`, `url`, `secret`, `format`, `filters`, `enabled`; see Reactions'],
  ['DISPATCHER_WORKERS', 'dispatcherWorkers', '4', 'webhook deliveries sent at once by this process; 0 runs no dispatcher here'],
  ['WEBHOOK_TIMEOUT', 'webhookTimeout', '10s', 'a webhook attempt without an answer by then has failed (and is retried)'],
  ['WEBHOOK_MAX_ATTEMPTS', 'webhookMaxAttempts', '12', 'attempts before a delivery moves to the dead letters'],
  ['WEBHOOK_BACKOFF_BASE', 'webhookBackoffBase', '1s', 'first retry delay; doubles per attempt, with jitter'],
  ['WEBHOOK_BACKOFF_MAX', 'webhookBackoffMax', '10m', 'longest retry delay (a longer `Retry-After` is honoured up to 1 h)'],
  ['WEBHOOK_GROUP_WINDOW', 'webhookGroupWindow', '60s', 'per endpoint + entity + source: the first anomaly alerts at once, the rest of the window become one alert with a count; 0 = no grouping'],
  ['CAUSALITY_BUS', 'bus', '(embedded log)', '`nats://host:4222[,nats://…]`: the bus is a NATS JetStream stream instead of the embedded log'],
  ['CAUSALITY_BUS_STREAM', 'busStream', 'CAUSALITY_EVENTS', 'JetStream stream name (its subjects are `<stream lower-case>.<partition>`)'],
  ['BUS_PARTITIONS', 'busPartitions', '1', 'partitions of the bus by entity (device, else user): each detector (`--partition N`) owns one; the same on every ingest process'],
  ['DATABASE_URL', 'databaseUrl', '(embedded SQLite)', '`postgres://user@host:5432/db[?schema=name]`: anomalies, snapshots, webhooks, outbox, saved queries and metric-crash state in PostgreSQL instead of `<dataDir>/state.db`'],
  ['S3_BUCKET', 's3.bucket', '(local files)', 'Parquet warehouse in this S3-compatible bucket instead of `<dataDir>/warehouse`'],
  ['S3_ENDPOINT', 's3.endpoint', '(AWS)', 'S3-compatible endpoint URL (path-style addressing)'],
  ['S3_PREFIX', 's3.prefix', '(none)', 'key prefix inside the bucket'],
  ['S3_REGION', 's3.region', 'us-east-1', 'region'],
  ['S3_ACCESS_KEY_ID', 's3.accessKeyId', '(SDK default chain)', 'access key'],
  ['S3_SECRET_ACCESS_KEY', 's3.secretAccessKey', '(SDK default chain)', 'secret key'],
  ['S3_CACHE_BYTES', 's3CacheBytes', '4294967296', 'local read-through cache of warehouse objects for DuckDB (least recently used evicted)'],
];

/** `all`, or a comma list of roles (an unknown one is an error, not ignored). */
export function parseRoles(v: string | readonly string[]): Role[] {
  const names = (typeof v === 'string' ? v.split(',') : [...v]).map((r) => r.trim()).filter(Boolean);
  if (names.length === 0 || names.includes('all')) return [...ROLES];
  for (const r of names) if (!(ROLES as readonly string[]).includes(r)) throw new Error(`unknown role "${r}" (roles: ${ROLES.join(', ')}, or all)`);
  return [...new Set(names)] as Role[];
}

/** Parses `500ms`, `1s`, `30s`, `5m`, `1h` or a bare number of milliseconds. */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  if (!m) throw new Error(`not a duration: ${v} (use e.g. 500ms, 1s, 30s, 5m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

/** A webhook endpoint of the config file: as over the API, but with its id and secret given (receivers verify with it). */
const configEndpointSchema = endpointInputSchema.extend({ id: endpointInputSchema.shape.id.unwrap(), secret: z.string().min(16, 'at least 16 characters') });

const appSchema = z.object({
  appId: z.string().regex(APP_ID_PATTERN),
  key: z.string().min(8),
  hmacSecret: z.string().min(8).optional(),
});

const fileSchema = z
  .object({
    dataDir: z.string(),
    host: z.string(),
    port: z.number().int(),
    apps: z.array(appSchema),
    adminKey: z.string().min(8),
    ipSalt: z.string().min(8),
    trustedProxies: z.array(z.string()),
    corsOrigins: z.array(z.string()),
    maxBodyBytes: z.number().int().positive(),
    maxBatchEvents: z.number().int().positive(),
    rateLimitPerMinute: z.number().int().min(0),
    hmacWindowSeconds: z.number().int().positive(),
    batchMaxEvents: z.number().int().positive(),
    batchFlushInterval: z.union([z.string(), z.number()]),
    compactMinFiles: z.number().int().min(2),
    queryRowLimit: z.number().int().positive(),
    queryTimeoutMs: z.number().int().positive(),
    metricsCacheMs: z.number().int().min(0),
    dedupeWindowEvents: z.number().int().positive(),
    segmentBytes: z.number().int().positive(),
    retentionHours: z.number().positive(),
    retentionBytes: z.number().int().min(0),
    backgroundNice: z.number().int().min(0).max(19),
    logLevel: z.string(),
    webhooks: z.array(configEndpointSchema),
    dispatcherWorkers: z.number().int().min(0).max(256),
    webhookTimeout: z.union([z.string(), z.number()]),
    webhookMaxAttempts: z.number().int().min(1),
    webhookBackoffBase: z.union([z.string(), z.number()]),
    webhookBackoffMax: z.union([z.string(), z.number()]),
    webhookGroupWindow: z.union([z.string(), z.number()]),
    rulesDir: z.string(),
    detector: z.union([z.boolean(), z.enum(['on', 'off'])]),
    detectorSnapshotInterval: z.union([z.string(), z.number()]),
    detectorNice: z.number().int().min(0).max(19),
    detectorWarmFrom: z.string(),
    risk: z.object({
      components: z.record(z.string(), z.object({ paths: z.array(z.string()).optional(), keywords: z.array(z.string()).optional() })).optional(),
      highKeywords: z.array(z.string()).optional(),
      mediumKeywords: z.array(z.string()).optional(),
    }),
    riskLlm: z.object({ baseUrl: z.string().url(), apiKey: z.string().optional(), model: z.string().optional(), timeout: z.union([z.string(), z.number()]).optional() }),
    changeWebhookSecrets: z.object({ github: z.string().optional(), slack: z.string().optional() }),
    consumerDeferAbove: z.number().int().min(0),
    consumerMaxDefer: z.union([z.string(), z.number()]),
    bus: z.string(),
    busStream: z.string().regex(/^[A-Za-z0-9_-]+$/),
    busPartitions: z.number().int().min(1).max(64),
    roles: z.union([z.string(), z.array(z.enum(ROLES))]),
    detectorPartition: z.number().int().min(0),
    databaseUrl: z.string(),
    s3: z.object({
      endpoint: z.string().optional(),
      bucket: z.string(),
      prefix: z.string().optional(),
      region: z.string().optional(),
      accessKeyId: z.string().optional(),
      secretAccessKey: z.string().optional(),
    }),
    s3CacheBytes: z.number().int().min(0),
  })
  .partial();

export interface ConfigOverrides {
  dataDir?: string;
  roles?: string;
  detectorPartition?: number;
  configPath?: string;
  port?: number;
  host?: string;
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

function parsePairs(v: string | undefined, what: string): Array<[string, string]> {
  return list(v).map((pair) => {
    const i = pair.indexOf(':');
    if (i <= 0) throw new Error(`${what}: expected name:value pairs, got "${pair}"`);
    return [pair.slice(0, i), pair.slice(i + 1)];
  });
}

const secret = (prefix: string) => `${prefix}_${randomBytes(18).toString('base64url')}`;

/** CAUSALITY_WEBHOOKS: a JSON array of endpoints, each with an `id` and a `secret`. */
function parseWebhooksEnv(text: string): Array<EndpointInput & { id: string; secret: string }> {
  const parsed = z.array(configEndpointSchema).safeParse(JSON.parse(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`CAUSALITY_WEBHOOKS: ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** Loads configuration; on a first run with no keys anywhere, writes a dev config and reports it. */
export function loadConfig(
  overrides: ConfigOverrides = {},
  env: NodeJS.ProcessEnv = process.env,
): { config: Config; createdDevConfig: boolean } {
  const dataDir = resolve(overrides.dataDir ?? env.CAUSALITY_DATA_DIR ?? './data');
  const configPath = resolve(overrides.configPath ?? env.CAUSALITY_CONFIG ?? join(dataDir, 'config.yaml'));
  let file: z.infer<typeof fileSchema> = {};
  if (existsSync(configPath)) {
    const text = readFileSync(configPath, 'utf8');
    const parsed = fileSchema.safeParse(configPath.endsWith('.json') ? JSON.parse(text) : YAML.parse(text) ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`${configPath}: ${issue.path.join('.')}: ${issue.message}`);
    }
    file = parsed.data;
  }

  let apps: AppConfig[] = file.apps ?? [];
  const envApps = parsePairs(env.CAUSALITY_APP_KEYS, 'CAUSALITY_APP_KEYS');
  if (envApps.length) apps = envApps.map(([appId, key]) => ({ appId, key }));
  for (const [appId, hmacSecret] of parsePairs(env.CAUSALITY_HMAC_SECRETS, 'CAUSALITY_HMAC_SECRETS')) {
    const app = apps.find((a) => a.appId === appId);
    if (!app) throw new Error(`CAUSALITY_HMAC_SECRETS: unknown app ${appId}`);
    app.hmacSecret = hmacSecret;
  }
  for (const a of apps) appSchema.parse(a);
  let adminKey = env.CAUSALITY_ADMIN_KEY ?? file.adminKey;
  let ipSalt = env.IP_HASH_SALT ?? file.ipSalt;

  let createdDevConfig = false;
  if (!existsSync(configPath) && apps.length === 0 && !adminKey) {
    apps = [{ appId: 'demo', key: secret('app') }];
    adminKey = secret('admin');
    ipSalt = ipSalt ?? randomBytes(24).toString('base64url');
    mkdirSync(dirname(configPath), { recursive: true });
    const doc = { apps, adminKey, ipSalt };
    writeFileSync(configPath, `# Created on first run. Edit freely; see the README for every option.\n${YAML.stringify(doc)}`, {
      mode: 0o600,
    });
    createdDevConfig = true;
  }
  if (!adminKey) throw new Error('no admin key: set CAUSALITY_ADMIN_KEY or adminKey in the config file');
  if (!ipSalt) {
    // A stable salt is needed so the same IP hashes alike across restarts; keep it beside the data.
    const saltFile = join(dataDir, 'ip-salt');
    if (existsSync(saltFile)) ipSalt = readFileSync(saltFile, 'utf8').trim();
    else {
      ipSalt = randomBytes(24).toString('base64url');
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(saltFile, ipSalt, { mode: 0o600 });
    }
  }

  const int = (e: string | undefined, f: number | undefined, d: number) => {
    if (e !== undefined && e !== '') {
      const n = Number(e);
      if (!Number.isFinite(n)) throw new Error(`not a number: ${e}`);
      return n;
    }
    return f ?? d;
  };
  const config: Config = {
    dataDir,
    configPath,
    host: overrides.host ?? env.HOST ?? file.host ?? '0.0.0.0',
    port: overrides.port ?? int(env.PORT, file.port, 8080),
    apps,
    adminKey,
    ipSalt,
    trustedProxies: env.TRUSTED_PROXIES !== undefined ? list(env.TRUSTED_PROXIES) : file.trustedProxies ?? [],
    corsOrigins: env.CORS_ALLOW_ORIGINS !== undefined ? list(env.CORS_ALLOW_ORIGINS) : file.corsOrigins ?? ['*'],
    maxBodyBytes: int(env.MAX_BODY_BYTES, file.maxBodyBytes, 1024 * 1024),
    maxBatchEvents: int(env.MAX_BATCH_EVENTS, file.maxBatchEvents, 1000),
    rateLimitPerMinute: int(env.RATE_LIMIT_PER_MINUTE, file.rateLimitPerMinute, 60_000),
    hmacWindowSeconds: int(env.HMAC_WINDOW_SECONDS, file.hmacWindowSeconds, 300),
    batchMaxEvents: int(env.BATCH_MAX_EVENTS, file.batchMaxEvents, 50_000),
    batchFlushIntervalMs: parseDuration(env.BATCH_FLUSH_INTERVAL ?? file.batchFlushInterval ?? '2s'),
    compactMinFiles: int(env.COMPACT_MIN_FILES, file.compactMinFiles, 8),
    queryRowLimit: int(env.QUERY_ROW_LIMIT, file.queryRowLimit, 10_000),
    queryTimeoutMs: int(env.QUERY_TIMEOUT_MS, file.queryTimeoutMs, 10_000),
    metricsCacheMs: int(env.METRICS_CACHE_MS, file.metricsCacheMs, 5_000),
    dedupeWindowEvents: int(env.DEDUPE_WINDOW_EVENTS, file.dedupeWindowEvents, 2_000_000),
    segmentBytes: int(env.LOG_SEGMENT_BYTES, file.segmentBytes, 64 * 1024 * 1024),
    retentionHours: int(env.LOG_RETENTION_HOURS, file.retentionHours, 168),
    retentionBytes: int(env.LOG_RETENTION_BYTES, file.retentionBytes, 0),
    backgroundNice: int(env.BACKGROUND_NICE, file.backgroundNice, 19),
    logLevel: env.LOG_LEVEL ?? file.logLevel ?? 'info',
    webhooks: env.CAUSALITY_WEBHOOKS ? parseWebhooksEnv(env.CAUSALITY_WEBHOOKS) : (file.webhooks ?? []),
    dispatcherWorkers: int(env.DISPATCHER_WORKERS, file.dispatcherWorkers, 4),
    webhookTimeoutMs: parseDuration(env.WEBHOOK_TIMEOUT ?? file.webhookTimeout ?? '10s'),
    webhookMaxAttempts: int(env.WEBHOOK_MAX_ATTEMPTS, file.webhookMaxAttempts, 12),
    webhookBackoffBaseMs: parseDuration(env.WEBHOOK_BACKOFF_BASE ?? file.webhookBackoffBase ?? '1s'),
    webhookBackoffMaxMs: parseDuration(env.WEBHOOK_BACKOFF_MAX ?? file.webhookBackoffMax ?? '10m'),
    webhookGroupWindowMs: parseDuration(env.WEBHOOK_GROUP_WINDOW ?? file.webhookGroupWindow ?? '60s'),
    rulesDir: resolve(env.RULES_DIR ?? file.rulesDir ?? join(dataDir, 'rules')),
    detectorEnabled: ![false, 'off'].includes(env.DETECTOR ?? file.detector ?? 'on'),
    detectorNice: int(env.DETECTOR_NICE, file.detectorNice, 0),
    detectorWarmFrom: env.DETECTOR_WARM_FROM ?? file.detectorWarmFrom ?? null,
    risk: file.risk ?? {},
    riskLlm: (() => {
      const baseUrl = env.RISK_LLM_BASE_URL ?? file.riskLlm?.baseUrl;
      if (!baseUrl) return null;
      return {
        baseUrl,
        apiKey: env.RISK_LLM_API_KEY ?? file.riskLlm?.apiKey,
        model: env.RISK_LLM_MODEL ?? file.riskLlm?.model ?? 'gpt-4o-mini',
        timeoutMs: parseDuration(env.RISK_LLM_TIMEOUT ?? file.riskLlm?.timeout ?? '10s'),
      };
    })(),
    changeWebhookSecrets: {
      github: env.GITHUB_WEBHOOK_SECRET ?? file.changeWebhookSecrets?.github,
      slack: env.SLACK_SIGNING_SECRET ?? file.changeWebhookSecrets?.slack,
    },
    deferAboveEventsPerSecond: int(env.CONSUMER_DEFER_ABOVE, file.consumerDeferAbove, 20_000),
    maxDeferMs: parseDuration(env.CONSUMER_MAX_DEFER ?? file.consumerMaxDefer ?? '30s'),
    detectorSnapshotMs: parseDuration(env.DETECTOR_SNAPSHOT_INTERVAL ?? file.detectorSnapshotInterval ?? '60s'),
    busUrl: env.CAUSALITY_BUS || file.bus || null,
    busStream: env.CAUSALITY_BUS_STREAM || file.busStream || 'CAUSALITY_EVENTS',
    busPartitions: int(env.BUS_PARTITIONS, file.busPartitions, 1),
    roles: parseRoles(overrides.roles ?? env.CAUSALITY_ROLE ?? file.roles ?? 'all'),
    detectorPartition: overrides.detectorPartition ?? (env.DETECTOR_PARTITION ? int(env.DETECTOR_PARTITION, undefined, 0) : file.detectorPartition ?? null),
    databaseUrl: env.DATABASE_URL || file.databaseUrl || null,
    s3: (() => {
      const bucket = env.S3_BUCKET || file.s3?.bucket;
      if (!bucket) return null;
      return {
        endpoint: env.S3_ENDPOINT || file.s3?.endpoint || null,
        bucket,
        prefix: (env.S3_PREFIX ?? file.s3?.prefix ?? '').replace(/^\/+|\/+$/g, ''),
        region: env.S3_REGION || file.s3?.region || 'us-east-1',
        accessKeyId: env.S3_ACCESS_KEY_ID || file.s3?.accessKeyId,
        secretAccessKey: env.S3_SECRET_ACCESS_KEY || file.s3?.secretAccessKey,
      };
    })(),
    s3CacheBytes: int(env.S3_CACHE_BYTES, file.s3CacheBytes, 4 * 1024 ** 3),
  };
  return { config, createdDevConfig };
}
