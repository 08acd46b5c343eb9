// Events files (JSONL, one event per line in the HTTP envelope: nested `{"event":{…}}`, a bare event in the nested or
// flat shape, or a `{"events":[…]}` batch per line), normalised exactly as ingest normalises them. An event may carry
// its client IP as `context.ip` (generated traffic, a server-side relay): it is hashed and dropped before normalising.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { normalizeEvent, type FieldError, type RequestFacts } from '../event/envelope.js';
import { EVENT_COLUMNS, type StoredEvent } from '../event/stored-event.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { fileIpHash } from './ip.js';

export type FileEventResult = { ok: true; event: StoredEvent } | { ok: false; error: FieldError };

/** Normalises one event object from a file: its receive time is its own timestamp (no network in a file). */
export function normalizeFileEvent(raw: unknown): FileEventResult {
  let input = raw;
  let ipHash: string | null = null;
  let receivedAt = Date.now();
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const o = raw as Record<string, unknown>;
    const ctx = o.context as Record<string, unknown> | undefined;
    if (ctx && typeof ctx === 'object' && typeof ctx.ip === 'string') {
      ipHash = fileIpHash(ctx.ip);
      const { ip: _ip, ...rest } = ctx;
      input = { ...o, context: rest };
    }
    const ts = o.timestamp;
    if (typeof ts === 'number' && Number.isFinite(ts)) receivedAt = ts;
    else if (typeof ts === 'string') {
      const ms = /^\d+$/.test(ts) ? Number(ts) : Date.parse(ts);
      if (Number.isFinite(ms)) receivedAt = ms;
    }
    if (typeof o.ipHash === 'string') ipHash = o.ipHash;
  }
  const facts: RequestFacts = { appId: null, receivedAt, userAgent: null, ipHash, ua: null };
  return normalizeEvent(input, facts);
}

/** Events of one line (a line may hold one event, `{"event":…}`, or `{"events":[…]}`). */
export function lineEvents(line: string): unknown[] {
  const v = JSON.parse(line) as unknown;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.events)) return o.events;
    if (o.event && typeof o.event === 'object') return [o.event];
  }
  return [v];
}

export interface ReadReport {
  lines: number;
  events: number;
  invalid: number;
  firstErrors: string[];
  sorted: boolean;
}

/** Reads a JSONL events file into memory, normalised and in time order (stable: file order breaks ties). */
export async function readEventsFile(path: string, onLine?: (bytes: number) => void): Promise<{ events: StoredEvent[]; report: ReadReport }> {
  const events: StoredEvent[] = [];
  const report: ReadReport = { lines: 0, events: 0, invalid: 0, firstErrors: [], sorted: true };
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lastTs = -Infinity;
  for await (const line of rl) {
    report.lines++;
    onLine?.(Buffer.byteLength(line) + 1);
    if (!line.trim()) continue;
    let items: unknown[];
    try {
      items = lineEvents(line);
    } catch (err) {
      report.invalid++;
      if (report.firstErrors.length < 5) report.firstErrors.push(`line ${report.lines}: not JSON (${(err as Error).message})`);
      continue;
    }
    for (const item of items) {
      const r = normalizeFileEvent(item);
      if (!r.ok) {
        report.invalid++;
        if (report.firstErrors.length < 5) report.firstErrors.push(`line ${report.lines}: ${r.error.field} ${r.error.message}`);
        continue;
      }
      if (r.event.ts < lastTs) report.sorted = false;
      lastTs = r.event.ts;
      events.push(r.event);
    }
  }
  report.events = events.length;
  if (!report.sorted) events.sort((a, b) => a.ts - b.ts);
  return { events, report };
}

/**
 * Reads stored events from Parquet (the warehouse's own files: a file, a glob, or a directory searched recursively),
 * in time order. Files a compaction superseded may still sit beside their replacement: one row per (app, event id).
 */
export async function readParquetEvents(pathOrGlob: string): Promise<{ events: StoredEvent[]; report: ReadReport }> {
  const { statSync } = await import('node:fs');
  let glob = pathOrGlob;
  try {
    if (statSync(pathOrGlob).isDirectory()) glob = `${pathOrGlob.replace(/\/+$/, '')}/**/*.parquet`;
  } catch {
    /* a glob */
  }
  const r = await readParquetRelation(`read_parquet(${sqlQuote(glob)}, hive_partitioning = true, union_by_name = true)`);
  return { events: r.events, report: { lines: r.events.length, events: r.events.length, invalid: 0, firstErrors: [], sorted: true } };
}

const sqlQuote = (s: string) => `'${s.replaceAll("'", "''")}'`;

const STORED_COLUMNS = EVENT_COLUMNS.map((c) =>
  c.type === 'TIMESTAMP' ? `epoch_ms(${c.name})::DOUBLE AS ${c.name}` : c.type === 'UUID' || c.type === 'JSON' ? `CAST(${c.name} AS VARCHAR) AS ${c.name}` : c.type === 'BIGINT' ? `${c.name}::DOUBLE AS ${c.name}` : c.name,
).join(', ');

/**
 * Stored events of a DuckDB relation over Parquet (a `read_parquet(…)` call or a subquery), in time order, one row per
 * (app, event id), filtered by `where` and cut at `limit` rows, streamed in batches from a private DuckDB.
 */
export async function* streamParquetRelation(relation: string, o: { where?: string; limit?: number } = {}): AsyncGenerator<StoredEvent[]> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
  const conn = await instance.connect();
  try {
    const limit = o.limit === undefined ? '' : ` LIMIT ${Math.floor(o.limit)}`;
    const result = await conn.stream(
      `SELECT ${STORED_COLUMNS} FROM ${relation}${o.where ? ` WHERE ${o.where}` : ''}
       QUALIFY row_number() OVER (PARTITION BY app_id, event_id) = 1 ORDER BY ts, received_at${limit}`,
    );
    for await (const rows of result.yieldRowObjectJs()) {
      const events = rows as unknown as StoredEvent[];
      for (const e of events) if (typeof e.props !== 'string') e.props = '{}';
      yield events;
    }
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** The same, collected; `truncated` when more than `limit` rows were there. */
export async function readParquetRelation(relation: string, o: { where?: string; limit?: number } = {}): Promise<{ events: StoredEvent[]; truncated: boolean }> {
  const events: StoredEvent[] = [];
  for await (const batch of streamParquetRelation(relation, { where: o.where, limit: o.limit === undefined ? undefined : o.limit + 1 })) events.push(...batch);
  const truncated = o.limit !== undefined && events.length > o.limit;
  if (truncated) events.length = o.limit!;
  return { events, truncated };
}

/** Backtests' source: the warehouse's live files of the range's days, cut to the exact range, streamed in time order. */
export function warehouseEventReader(warehouse: Pick<Warehouse, 'openEventsRelation'>) {
  return async function* readWarehouseEvents(q: { appId: string | null; fromMs: number; toMs: number; maxEvents: number }): AsyncGenerator<StoredEvent[]> {
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    // Its files stay readable (on S3: in the cache) until the backtest is done with them.
    const relation = await warehouse.openEventsRelation({ appId: q.appId, fromDate: day(q.fromMs), toDate: day(q.toMs) });
    try {
      yield* streamParquetRelation(`(${relation.sql})`, { where: `ts >= epoch_ms(${Math.floor(q.fromMs)}) AND ts < epoch_ms(${Math.ceil(q.toMs)})`, limit: q.maxEvents });
    } finally {
      relation.release();
    }
  };
}

/** JSONL or Parquet by the path: `.parquet`, a glob with `*`, or a directory are Parquet. */
export async function readAnyEventsFile(path: string, onLine?: (bytes: number) => void): Promise<{ events: StoredEvent[]; report: ReadReport }> {
  const { statSync } = await import('node:fs');
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* not a plain path */
  }
  return isDir || /\.parquet$/i.test(path) || path.includes('*') ? readParquetEvents(path) : readEventsFile(path, onLine);
}
