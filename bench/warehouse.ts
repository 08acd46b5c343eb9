// Warehouse benchmark: N events (default 10M) written through the project's own path — the ingest pipeline (validation,
// dedupe, durable ingest records) → SegmentedLog → the node's WarehouseSink (zstd Parquet) → compaction — then query
// latency over HTTP (metrics endpoints and POST /v1/query) against the same SQL on a fresh raw DuckDB over the same files.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Presets, SingleBar } from 'cli-progress';
import { SegmentedLog } from '../src/bus/segmented-log.js';
import { loadConfig } from '../src/config.js';
import type { RequestFacts } from '../src/event/envelope.js';
import { parseUserAgent } from '../src/event/user-agent.js';
import { createVariedEvents, rng } from '../src/generate/traffic.js';
import { checkBody } from '../src/ingest/check-body.js';
import { EventIdDedupe } from '../src/ingest/dedupe.js';
import { createIngestPipeline } from '../src/ingest/pipeline.js';
import { startNode, type RunningNode } from '../src/node.js';
import { createLogger } from '../src/obs/logger.js';
import { createMetrics } from '../src/obs/metrics.js';
import { VIEW_TYPES } from '../src/query/routes.js';
import { sqlString } from '../src/warehouse/duckdb.js';
import { ADMIN_KEY, bytesReport, causalityEnv, listParquet, type WarehouseBytes } from './ingest.js';
import { measureUiPages, type PageTiming } from './ui-pages.js';

export const APPS = ['shop', 'news-web', 'game'] as const;
/** The app whose traffic is a web site: pageviews with URLs, paths, referrers and UTM tags. */
export const WEB_APP = 'news-web';
const DAY = 86_400_000;

export interface WarehouseOptions {
  events: number;
  days: number;
  devices: number;
  runs: number;
  tmpDir: string;
  say: (line: string) => void;
  /** Timed loads of every web UI page over the same warehouse (0 = none). */
  uiRuns?: number;
  /** Generate into this directory once, and reuse what it holds on later runs (BENCH_WAREHOUSE_DIR). */
  reuseDir?: string;
}

export interface Timing {
  name: string;
  what: string;
  runs: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

export interface QueryRow {
  name: string;
  sql: string;
  causality: Timing;
  raw: Timing;
  /** causality p50 / raw p50 */
  ratio: number;
  sameAnswer: boolean;
}

export interface WarehouseReport {
  events: number;
  days: number;
  devices: number;
  apps: string[];
  timings: { generateSeconds: number; sinkSeconds: number; compactSeconds: number; nodeStartSeconds: number; totalSeconds: number };
  /** The events were generated, sunk and compacted by an earlier run in this directory (BENCH_WAREHOUSE_DIR). */
  reusedFrom?: string;
  log: { bytes: number; bytesPerEvent: number; records: number };
  sinkFiles: number;
  compactions: number;
  partitions: number;
  bytes: WarehouseBytes;
  metricsEndpoints: QueryRow[];
  sql: QueryRow[];
  /** Web UI page loads over the same warehouse (null: not measured). */
  pages: PageTiming[] | null;
  range: { from: string; to: string; app: string };
}

// ---- progress -------------------------------------------------------------------------------------------------

interface Progress {
  update(n: number, note?: string): void;
  stop(): void;
}

/** cli-progress bar on a terminal; otherwise a line per ~10% (so logs stay readable). */
export function progress(label: string, total: number, say: (l: string) => void): Progress {
  if (process.stderr.isTTY) {
    const bar = new SingleBar(
      { format: `${label.padEnd(17)} |{bar}| {percentage}% {value}/{total} {note} | {duration_formatted}`, hideCursor: true, stream: process.stderr },
      Presets.shades_classic,
    );
    bar.start(total, 0, { note: '' });
    return { update: (n, note = '') => bar.update(n, { note }), stop: () => bar.stop() };
  }
  const started = Date.now();
  let nextAt = 0;
  return {
    update(n, note = '') {
      if (n < nextAt && n < total) return;
      nextAt = n + Math.max(1, Math.ceil(total / 10));
      say(`  ${label}: ${n.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${note} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    },
    stop() {},
  };
}

// ---- traffic --------------------------------------------------------------------------------------------------

const SECTIONS = ['world', 'politics', 'business', 'tech', 'science', 'sport', 'culture', 'travel'];
const REFERRERS = ['https://www.google.com/', 'https://news.ycombinator.com/', 'https://t.co/x', 'https://www.facebook.com/', null, null, null];
const UTM = [
  '?utm_source=newsletter&utm_medium=email&utm_campaign=weekly',
  '?utm_source=twitter&utm_medium=social&utm_campaign=launch',
  '?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=news',
];
const WEB_CONTEXTS = [
  { platform: 'web', os: 'Windows', osVersion: '11', locale: 'en-GB' },
  { platform: 'web', os: 'macOS', osVersion: '14.5', locale: 'en-US' },
  { platform: 'web', os: 'iOS', osVersion: '17.5', locale: 'fr-FR' },
  { platform: 'web', os: 'Android', osVersion: '14', locale: 'de-DE' },
];

/** Events for the three apps; the web app's screens become pageviews of a news site with a long tail of articles. */
export function createBenchTraffic(devices: number, seed: number) {
  const next = createVariedEvents({ appIds: [...APPS], devices, seed });
  const rand = rng(seed ^ 0x5eed);
  const pathOf = (screen: string): string => {
    const section = SECTIONS[Math.floor(rand() * SECTIONS.length)]!;
    switch (screen) {
      case 'Home':
        return '/';
      case 'Search':
        return '/search';
      case 'ProductList':
        return `/${section}`;
      case 'ProductDetail':
      case 'Cart':
      case 'Checkout': {
        // Article popularity is skewed (a few hot stories, a long tail).
        const n = Math.floor(Math.pow(rand(), 3) * 2000);
        return `/${section}/2024/story-${n}`;
      }
      case 'Profile':
        return '/account';
      default:
        return '/about';
    }
  };
  return (ts: number): Record<string, unknown> => {
    const ev = next(ts);
    if (ev.appId !== WEB_APP) return ev;
    const ctx = WEB_CONTEXTS[String(ev.deviceId).charCodeAt(String(ev.deviceId).length - 1) % WEB_CONTEXTS.length]!;
    const sv = ev.screenView as { screenName: string } | undefined;
    if (!sv) return { ...ev, context: ctx };
    const { screenView: _drop, ...rest } = ev;
    const r = rand();
    return {
      ...rest,
      type: 'pageview',
      url: `https://news.example.com${pathOf(sv.screenName)}${r < 0.08 ? UTM[Math.floor(rand() * UTM.length)] : ''}`,
      referrer: r < 0.3 ? REFERRERS[Math.floor(rand() * REFERRERS.length)] : null,
      context: ctx,
    };
  };
}

// ---- generation -----------------------------------------------------------------------------------------------

const WEB_USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
];
/** Events per request: an SDK sends a session's events in small batches (and what is left when the session ends). */
const SDK_BATCH = 20;
/** Requests handed to the pipeline before waiting for their group commits. */
const IN_FLIGHT = 256;

/**
 * Writes the log through the ingest pipeline itself (createIngestPipeline: validation → dedupe → one durable ingest
 * record per request), exactly what the HTTP routes call, minus HTTP. Requests are SDK-like batches per session.
 */
async function generateLog(o: WarehouseOptions, dataDir: string, startMs: number, endMs: number): Promise<{ seconds: number; logBytes: number }> {
  const started = Date.now();
  const bus = await SegmentedLog.open({ dir: join(dataDir, 'log') });
  const ingest = createIngestPipeline({ bus, dedupe: new EventIdDedupe(200_000), metrics: createMetrics() });
  const nextEvent = createBenchTraffic(o.devices, 42);
  const jitter = rng(7);
  const ipHashes = new Map<string, string>();
  const ipOf = (deviceId: string) => {
    let h = ipHashes.get(deviceId);
    if (!h) {
      h = createHash('sha256').update(`ip-${deviceId}`).digest('hex').slice(0, 16);
      ipHashes.set(deviceId, h);
    }
    return h;
  };
  const sessions = new Map<string, Array<Record<string, unknown>>>();
  let requests: Array<Promise<void>> = [];
  let notAccepted = 0;
  let firstProblem = '';
  const send = async (events: Array<Record<string, unknown>>) => {
    const first = events[0]!;
    const appId = String(first.appId);
    const deviceId = String(first.deviceId);
    const userAgent = appId === WEB_APP ? WEB_USER_AGENTS[deviceId.charCodeAt(deviceId.length - 1) % WEB_USER_AGENTS.length]! : null;
    const facts: RequestFacts = {
      appId, // an app key, as an SDK sends
      receivedAt: Number(events[events.length - 1]!.timestamp) + 50 + Math.floor(jitter() * 2000),
      userAgent,
      ipHash: ipOf(deviceId),
      ua: userAgent ? parseUserAgent(userAgent) : null,
    };
    const body = Buffer.from(JSON.stringify({ events }));
    requests.push(
      (async () => {
        const checked = checkBody('batch', { events }, facts, 1000);
        const outcome = await ingest(checked, facts, 'batch', body);
        if (outcome.accepted === checked.count) return;
        notAccepted += checked.count - outcome.accepted;
        firstProblem ||= JSON.stringify({ duplicate: outcome.duplicate, errors: checked.errors });
      })(),
    );
    if (requests.length >= IN_FLIGHT) {
      const wait = requests;
      requests = [];
      await Promise.all(wait);
    }
  };

  const step = (endMs - startMs) / o.events;
  const bar = progress('generate (events)', o.events, o.say);
  try {
    for (let i = 0; i < o.events; i++) {
      const ev = nextEvent(Math.floor(startMs + i * step + jitter() * step));
      const sid = String(ev.sessionId);
      let buf = sessions.get(sid);
      if (!buf) sessions.set(sid, (buf = []));
      buf.push(ev);
      if (buf.length >= SDK_BATCH || ev.appBackground !== undefined) {
        sessions.delete(sid);
        await send(buf);
      }
      if ((i & 0x3fff) === 0) bar.update(i);
    }
    for (const buf of sessions.values()) await send(buf);
    await Promise.all(requests);
    bar.update(o.events);
  } finally {
    bar.stop();
    await bus.close();
  }
  if (notAccepted > 0) throw new Error(`the ingest pipeline did not accept ${notAccepted} generated events, e.g. ${firstProblem}`);
  const logBytes = (await listFiles(join(dataDir, 'log', 'segments'))).reduce((a, f) => a + f.bytes, 0);
  return { seconds: (Date.now() - started) / 1000, logBytes };
}

async function listFiles(dir: string): Promise<Array<{ name: string; bytes: number }>> {
  const out: Array<{ name: string; bytes: number }> = [];
  for (const name of await readdir(dir)) out.push({ name, bytes: (await stat(join(dir, name))).size });
  return out;
}

// ---- timing helpers -------------------------------------------------------------------------------------------

async function time(name: string, what: string, runs: number, fn: () => Promise<unknown>): Promise<{ timing: Timing; last: unknown }> {
  let last = await fn(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    last = await fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  const q = (p: number) => r(ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)]!);
  return { timing: { name, what, runs, p50: q(0.5), p95: q(0.95), min: r(ms[0]!), max: r(ms[ms.length - 1]!) }, last };
}

/** Rows to comparable JSON: bigints → numbers, dates/timestamps → ISO, numbers rounded (float sums differ in order). */
function canonical(rows: unknown[][]): string {
  const v = (x: unknown): unknown => {
    if (typeof x === 'bigint') return Number(x);
    if (x instanceof Date) return x.toISOString().slice(0, 10);
    if (typeof x === 'string' && /^\d{4}-\d{2}-\d{2}/.test(x)) return x.slice(0, 10);
    if (typeof x === 'number') return Math.round(x * 100) / 100;
    return x;
  };
  return JSON.stringify(rows.map((row) => row.map(v)));
}

// ---- the benchmark --------------------------------------------------------------------------------------------

export async function runWarehouseBench(o: WarehouseOptions): Promise<WarehouseReport> {
  const allStarted = Date.now();
  // BENCH_WAREHOUSE_DIR keeps the generated data between runs: a second run reuses it (same events, same range).
  const dataDir = o.reuseDir ?? join(o.tmpDir, 'warehouse-bench');
  const rangeFile = join(dataDir, 'bench-range.json');
  const reused = o.reuseDir ? await readFile(rangeFile, 'utf8').then((t) => JSON.parse(t) as { startMs: number; endMs: number; events: number; seconds: number; logBytes: number }, () => null) : null;
  if (reused && reused.events !== o.events) throw new Error(`${dataDir} holds ${reused.events} generated events, not BENCH_EVENTS=${o.events}`);
  const endMs = reused?.endMs ?? Date.now() - 60_000;
  const startMs = reused?.startMs ?? endMs - o.days * DAY;
  let gen: { seconds: number; logBytes: number };
  if (reused) {
    gen = reused;
    o.say(`  reusing ${o.events.toLocaleString('en-US')} events generated in ${dataDir} (${new Date(startMs).toISOString()} … ${new Date(endMs).toISOString()})`);
  } else {
    o.say(`  generating ${o.events.toLocaleString('en-US')} events over ${o.days} days, ${o.devices} devices, apps ${APPS.join(', ')}`);
    gen = await generateLog(o, dataDir, startMs, endMs);
    if (o.reuseDir) await writeFile(rangeFile, JSON.stringify({ startMs, endMs, events: o.events, ...gen }));
    o.say(`  log written: ${(gen.logBytes / 1e9).toFixed(2)} GB in ${gen.seconds.toFixed(1)} s (${Math.round(o.events / gen.seconds).toLocaleString('en-US')} ev/s)`);
  }

  const { config } = loadConfig(
    { dataDir, port: 0, host: '127.0.0.1' },
    // The compaction timer is kept out of the way (compact(2) is run by hand below), and the metrics cache is off.
    causalityEnv({ METRICS_CACHE_MS: '0', COMPACT_MIN_FILES: '1000000' }) as Record<string, string>,
  );
  const t0 = Date.now();
  const node: RunningNode = await startNode(config, { log: createLogger('warn') });
  const nodeStartSeconds = (Date.now() - t0) / 1000;
  try {
    // The sink starts consuming as soon as the node is up; follow it to the end of the log.
    const sinkStarted = Date.now();
    const end = node.bus.endOffset();
    // Progress in log records (one per ingest request, ~14 events each here).
    const bar = progress('sink (records)', end, o.say);
    while (node.sink.committedOffset < end) {
      bar.update(node.sink.committedOffset);
      await new Promise((r) => setTimeout(r, 500));
    }
    bar.update(end);
    bar.stop();
    await node.flush();
    const sinkSeconds = (Date.now() - sinkStarted) / 1000;
    const sinkRecords = end;
    const sinkFiles = (await node.warehouse.liveFiles()).length;
    o.say(`  sink: ${end.toLocaleString('en-US')} log records → ${sinkFiles} Parquet files in ${sinkSeconds.toFixed(1)} s (${Math.round(o.events / sinkSeconds).toLocaleString('en-US')} ev/s)`);

    const compactStarted = Date.now();
    let compactions = 0;
    for (let n; (n = await node.warehouse.compact(2)) > 0; ) {
      compactions += n;
      o.say(`  compacted ${n} partitions`);
    }
    const compactSeconds = (Date.now() - compactStarted) / 1000;
    const live = await node.warehouse.liveFiles();
    const partitions = new Set(live.map((f) => f.partition)).size;
    const count = await node.queries.run('SELECT count(*) FROM events', { appId: null, rowLimit: 10, timeoutMs: 600_000 });
    const rows = Number(count.rows[0]?.[0] ?? 0);
    const bytes = bytesReport(await listParquet(join(dataDir, 'warehouse')), live, rows);
    o.say(`  warehouse: ${rows.toLocaleString('en-US')} rows, ${live.length} files in ${partitions} partitions, ${bytes.bytesPerEventLive} B/event; compaction ${compactSeconds.toFixed(1)} s`);

    // ---- queries ----
    const fromDate = new Date(startMs).toISOString().slice(0, 10);
    const toDate = new Date(endMs).toISOString().slice(0, 10);
    const fromMs = Date.parse(`${fromDate}T00:00:00Z`);
    const toMs = Date.parse(`${toDate}T00:00:00Z`) + DAY;
    const app = WEB_APP;

    const raw = await DuckDBInstance.create(':memory:', { threads: '2', memory_limit: '4GB' });
    const rawConn = await raw.connect();
    const livePaths = live.map((f) => join(dataDir, 'warehouse', f.key));
    await rawConn.run(`CREATE VIEW events AS SELECT * FROM read_parquet([${livePaths.map(sqlString).join(', ')}], hive_partitioning = true)`);
    const rawRun = async (sql: string) => (await rawConn.runAndReadAll(sql)).getRowsJS();

    const http = async (path: string, init?: RequestInit) => {
      const r = await fetch(`${node.url}${path}`, { ...init, headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json', ...(init?.headers ?? {}) } });
      const body = (await r.json()) as any;
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${JSON.stringify(body)}`);
      return body;
    };
    const row = async (name: string, what: string, causality: () => Promise<unknown[][]>, rawSql: string): Promise<QueryRow> => {
      const c = await time(name, what, o.runs, causality);
      const r = await time(name, rawSql, o.runs, () => rawRun(rawSql));
      const res: QueryRow = {
        name,
        sql: rawSql,
        causality: c.timing,
        raw: r.timing,
        ratio: r.timing.p50 > 0 ? Math.round((c.timing.p50 / r.timing.p50) * 100) / 100 : 0,
        sameAnswer: canonical(c.last as unknown[][]) === canonical(r.last as unknown[][]),
      };
      o.say(`  ${name.padEnd(22)} causality p50 ${c.timing.p50} ms p95 ${c.timing.p95} ms | raw DuckDB p50 ${r.timing.p50} ms | ×${res.ratio}${res.sameAnswer ? '' : ' (ANSWERS DIFFER)'}`);
      return res;
    };

    const q = `app_id=${app}&from=${fromDate}&to=${toDate}`;
    const views = VIEW_TYPES.map(sqlString).join(', ');
    const inRange = `app_id = ${sqlString(app)} AND ts >= epoch_ms(${fromMs}) AND ts < epoch_ms(${toMs})`;
    const metricsEndpoints = [
      await row(
        'GET pageviews',
        `/v1/metrics/pageviews?${q}`,
        async () => ((await http(`/v1/metrics/pageviews?${q}`)).by_day as Array<{ day: string; pageviews: number }>).map((d) => [d.day, d.pageviews]),
        `SELECT strftime(ts, '%Y-%m-%d') AS day, count(*) AS pageviews FROM events WHERE type IN (${views}) AND ${inRange} GROUP BY 1 ORDER BY 1`,
      ),
      await row(
        'GET unique-users',
        `/v1/metrics/unique-users?${q}`,
        async () => {
          const b = await http(`/v1/metrics/unique-users?${q}`);
          return [[b.unique_users, b.unique_devices]];
        },
        `SELECT count(DISTINCT coalesce(user_id, device_id)) AS unique_users, count(DISTINCT device_id) AS unique_devices FROM events WHERE ${inRange}`,
      ),
      await row(
        'GET top-pages',
        `/v1/metrics/top-pages?${q}&limit=10`,
        async () => ((await http(`/v1/metrics/top-pages?${q}&limit=10`)).pages as Array<{ page: string; views: number }>).map((p) => [p.page, p.views]),
        `SELECT coalesce(path, screen_name) AS page, count(*) AS views FROM events WHERE type IN (${views}) AND ${inRange} AND coalesce(path, screen_name) IS NOT NULL GROUP BY 1 ORDER BY views DESC, page LIMIT 10`,
      ),
      await row(
        'GET top-pages?visitors=1',
        `/v1/metrics/top-pages?${q}&limit=10&visitors=1`,
        async () => ((await http(`/v1/metrics/top-pages?${q}&limit=10&visitors=1`)).pages as Array<{ page: string; views: number; visitors: number }>).map((p) => [p.page, p.views, p.visitors]),
        `SELECT coalesce(path, screen_name) AS page, count(*) AS views, count(DISTINCT coalesce(user_id, device_id)) AS visitors FROM events WHERE type IN (${views}) AND ${inRange} AND coalesce(path, screen_name) IS NOT NULL GROUP BY 1 ORDER BY views DESC, page LIMIT 10`,
      ),
    ];

    const SQL: Array<[string, string]> = [
      ['count by type', `SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type`],
      ['daily uniques', `SELECT CAST(ts AS DATE) AS day, count(DISTINCT device_id) AS devices FROM events WHERE app_id = 'shop' GROUP BY 1 ORDER BY 1`],
      [
        'funnel view→cart→buy',
        `WITH f AS (SELECT device_id, min(ts) FILTER (WHERE type = 'productView') AS v, min(ts) FILTER (WHERE type = 'addToCart') AS c, min(ts) FILTER (WHERE type = 'purchaseComplete') AS p FROM events WHERE app_id = 'shop' GROUP BY device_id) SELECT count(v) AS viewed, count(*) FILTER (WHERE c >= v) AS carted, count(*) FILTER (WHERE p >= c AND c >= v) AS bought FROM f`,
      ],
      ['top-10 paths', `SELECT path, count(*) AS views, count(DISTINCT device_id) AS visitors FROM events WHERE type = 'pageview' GROUP BY path ORDER BY views DESC, path LIMIT 10`],
    ];
    const sql: QueryRow[] = [];
    for (const [name, text] of SQL) {
      sql.push(await row(name, text, async () => (await http('/v1/query', { method: 'POST', body: JSON.stringify({ sql: text }) })).rows as unknown[][], text));
    }
    rawConn.closeSync();
    raw.closeSync();
    const pages = o.uiRuns ? await measureUiPages(node.url, ADMIN_KEY, o.uiRuns, o.say) : null;

    return {
      events: rows,
      days: o.days,
      devices: o.devices,
      apps: [...APPS],
      timings: {
        generateSeconds: gen.seconds,
        sinkSeconds,
        compactSeconds,
        nodeStartSeconds,
        totalSeconds: (Date.now() - allStarted) / 1000,
      },
      ...(reused ? { reusedFrom: dataDir } : {}),
      log: { bytes: gen.logBytes, bytesPerEvent: Math.round(gen.logBytes / Math.max(1, o.events)), records: sinkRecords },
      sinkFiles,
      compactions,
      partitions,
      bytes,
      metricsEndpoints,
      sql,
      pages,
      range: { from: fromDate, to: toDate, app },
    };
  } finally {
    await node.close();
  }
}
