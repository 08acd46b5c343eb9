// Shared harness for HTTP tests: a real node (HTTP + embedded log + Parquet sink + DuckDB) in a temp data dir.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import { startNode, type RunningNode } from '../src/node.js';
import { createLogger } from '../src/obs/logger.js';
import type { QueryResult } from '../src/query/query-service.js';
import { openPgPool } from '../src/state/postgres.js';

export const TEST_KEYS = { appA: 'keyA_12345678', appB: 'keyB_12345678', admin: 'admin_12345678' } as const;
export const TEST_IP_SALT = 'test_salt_0123456789';

/** The env every test node gets unless overridden (never process.env). */
export const BASE_ENV: Record<string, string> = {
  CAUSALITY_APP_KEYS: `appA:${TEST_KEYS.appA},appB:${TEST_KEYS.appB}`,
  CAUSALITY_ADMIN_KEY: TEST_KEYS.admin,
  IP_HASH_SALT: TEST_IP_SALT,
  BATCH_FLUSH_INTERVAL: '200ms',
  RATE_LIMIT_PER_MINUTE: '0',
  // A test node remembers fewer ids than the default 2 M: its dedupe memory (touched in full at start) stays small.
  DEDUPE_WINDOW_EVENTS: '100000',
};

export interface HttpResponse<T = any> {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the body is not JSON. */
  body: T;
  text: string;
}

export interface RequestOptions {
  /** API key sent as X-API-Key; null = no key. Default: none. */
  key?: string | null;
  headers?: Record<string, string>;
  method?: string;
}

export interface TestNode {
  node: RunningNode;
  config: Config;
  url: string;
  dataDir: string;
  /** Keys by app id (appA, appB, plus any extra apps from CAUSALITY_APP_KEYS) and `admin`. */
  keys: { appA: string; appB: string; admin: string } & Record<string, string>;
  /** POSTs a body: objects are sent as JSON, strings and buffers verbatim (content-type application/json unless given). */
  post<T = any>(path: string, body: unknown, opts?: RequestOptions): Promise<HttpResponse<T>>;
  get<T = any>(path: string, opts?: RequestOptions): Promise<HttpResponse<T>>;
  request<T = any>(path: string, opts?: RequestOptions & { body?: string | Buffer }): Promise<HttpResponse<T>>;
  /** Runs SQL through POST /v1/query (default key: admin); throws unless 200. */
  sql(sql: string, key?: string): Promise<QueryResult>;
  /** Closes the node and keeps the data dir (for restart tests). */
  stop(): Promise<void>;
  /** Closes the node and removes the data dir. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Reuse an existing data dir (restart); it is then removed by close() like a fresh one. */
  dataDir?: string;
  /** Write the node's own log (debug level) to <dataDir>/node.log instead of discarding it. */
  logToFile?: boolean;
}

export async function startTestNode(envOverrides: Record<string, string> = {}, opts: StartOptions = {}): Promise<TestNode> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'causality-test-')));
  const env = { ...BASE_ENV, ...envOverrides };
  // Opt-in (TEST_DATABASE_URL): the node keeps its state in PostgreSQL, in a schema named after its data dir (a
  // restart on the same dir finds it again), dropped by close().
  const pgSchema = process.env.TEST_DATABASE_URL && !env.DATABASE_URL ? `t_${basename(dataDir).toLowerCase().replace(/[^a-z0-9_]/g, '_')}` : null;
  if (pgSchema) {
    const u = new URL(process.env.TEST_DATABASE_URL!);
    u.searchParams.set('schema', pgSchema);
    env.DATABASE_URL = u.toString();
  }
  const { config } = loadConfig({ dataDir, port: 0, host: '127.0.0.1' }, env);
  const log = opts.logToFile
    ? pino({ level: 'debug' }, pino.destination({ dest: join(dataDir, 'node.log'), sync: true }))
    : createLogger('silent');
  const node = await startNode(config, { log });
  const url = node.url;

  const keys: Record<string, string> = { admin: config.adminKey };
  for (const a of config.apps) keys[a.appId] = a.key;

  async function request<T>(path: string, o: RequestOptions & { body?: string | Buffer } = {}): Promise<HttpResponse<T>> {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.key) headers['x-api-key'] = o.key;
    const res = await fetch(url + path, { method: o.method ?? (o.body === undefined ? 'GET' : 'POST'), headers, body: o.body });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, headers: res.headers, body: body as T, text };
  }

  let stopped = false;
  const t: TestNode = {
    node,
    config,
    url,
    dataDir,
    keys: keys as TestNode['keys'],
    request,
    post(path, body, o = {}) {
      const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      const headers = { 'content-type': 'application/json', ...(o.headers ?? {}) };
      return request(path, { ...o, headers, body: raw, method: 'POST' });
    },
    get(path, o = {}) {
      return request(path, { ...o, method: 'GET' });
    },
    async sql(sql, key = config.adminKey) {
      const r = await t.post<QueryResult>('/v1/query', { sql }, { key });
      if (r.status !== 200) throw new Error(`SQL failed with ${r.status}: ${r.text}\n${sql}`);
      return r.body;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await node.close();
      if (opts.logToFile) (log as pino.Logger).flush?.();
    },
    async close() {
      await t.stop();
      await rm(dataDir, { recursive: true, force: true });
      if (pgSchema) {
        const admin = await openPgPool({ url: process.env.TEST_DATABASE_URL!, poolSize: 1 });
        await admin.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`).finally(() => admin.end());
      }
    },
  };
  return t;
}

/** Every regular file under `dir`, recursively (missing dir → none). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Files under `dir` whose bytes contain `needle`. */
export async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const f of await filesUnder(dir)) if ((await readFile(f)).includes(Buffer.from(needle))) hits.push(f);
  return hits;
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Single-quoted SQL string literal. */
export const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
