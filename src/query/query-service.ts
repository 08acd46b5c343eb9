// Runs read-only SQL for a caller: guard → scoped `events` view → limited, interruptible execution.
import type { DuckDBConnection } from '@duckdb/node-api';
import { HttpError } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import type { DuckEngine } from '../warehouse/duckdb.js';
import { CacheTooSmallError } from '../warehouse/object-cache.js';
import type { FileFilter, Warehouse } from '../warehouse/warehouse.js';
import { eventsDateBounds, type DateBounds } from './partition-bounds.js';
import { checkSerializedSql } from './sql-guard.js';

export interface QueryResult {
  columns: string[];
  types: string[];
  rows: unknown[][];
  truncated: boolean;
  elapsedMs: number;
}

export interface QueryOptions {
  /** The caller's app (app key); null = all apps (admin key). */
  appId: string | null;
  rowLimit: number;
  timeoutMs: number;
  /** Narrows the files read (metrics endpoints know their date range). */
  files?: Omit<FileFilter, 'appId'>;
  endpoint?: string;
}

/** JSON-friendly values: bigints become numbers when safe, timestamps ISO strings, dates YYYY-MM-DD. */
export function toJsonValue(v: unknown, type = ''): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Date) return type === 'DATE' ? v.toISOString().slice(0, 10) : v.toISOString();
  if (Array.isArray(v)) return v.map((x) => toJsonValue(x));
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toJsonValue(x);
    return o;
  }
  return v;
}

/** Rows of a table kept outside the warehouse, as JSON objects with these DuckDB column types, for one app or all. */
export interface SideTable {
  columns: Record<string, string>;
  rows(appId: string | null): Promise<Array<Record<string, unknown>>>;
}

/** Replaces the connection's temp table with the current rows (one parameter: no file, no extension). */
async function loadSideTable(conn: DuckDBConnection, name: string, table: SideTable, appId: string | null): Promise<void> {
  const struct = `STRUCT(${Object.entries(table.columns).map(([c, t]) => `"${c}" ${t}`).join(', ')})`;
  const json = JSON.stringify(await table.rows(appId));
  await conn.run(`CREATE OR REPLACE TEMP TABLE ${name} AS SELECT unnest(CAST(json($1) AS ${struct}[]), recursive := true)`, [json]);
}

/** The tighter of two day ranges (inclusive YYYY-MM-DD strings compare as days). */
function narrowDays(a: DateBounds, b: DateBounds): DateBounds {
  const fromDate = [a.fromDate, b.fromDate].filter((d): d is string => !!d).sort().at(-1);
  const toDate = [a.toDate, b.toDate].filter((d): d is string => !!d).sort()[0];
  return { ...(fromDate ? { fromDate } : {}), ...(toDate ? { toDate } : {}) };
}

export class QueryService {
  private readonly idle: DuckDBConnection[] = [];
  private readonly viewOf = new WeakMap<DuckDBConnection, string>();

  private readonly sideTables = new Map<string, SideTable>();

  constructor(
    private readonly engine: DuckEngine,
    private readonly warehouse: Warehouse,
    private readonly metrics: Metrics,
  ) {}

  /** A table from another store (the state store's anomalies), loaded into the connection when a query reads it. */
  addSideTable(name: string, table: SideTable): void {
    this.sideTables.set(name, table);
  }

  private async acquire(): Promise<DuckDBConnection> {
    return this.idle.pop() ?? (await this.engine.connect());
  }

  private release(conn: DuckDBConnection): void {
    if (this.idle.length < 4) this.idle.push(conn);
    else conn.closeSync();
  }

  /** Checks the query; returns the product tables it reads and the days of events it can read. */
  async guard(conn: DuckDBConnection, sql: string): Promise<{ tables: Set<string>; dates: DateBounds }> {
    const r = await conn.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
    const serialized = String(r.getRows()[0]?.[0] ?? '');
    const verdict = checkSerializedSql(serialized);
    if (!verdict.ok) {
      this.metrics.queryRefused.inc({ reason: verdict.code });
      throw new HttpError(400, verdict.code, verdict.message, 'sql');
    }
    return { tables: verdict.tables, dates: verdict.tables.has('events') ? eventsDateBounds(serialized) : {} };
  }

  async run(sql: string, opts: QueryOptions): Promise<QueryResult> {
    if (typeof sql !== 'string' || !sql.trim()) throw new HttpError(400, 'missing_field', 'is required', 'sql');
    if (sql.length > 100_000) throw new HttpError(400, 'invalid_field', 'is longer than 100000 characters', 'sql');
    const started = performance.now();
    const conn = await this.acquire();
    let healthy = true;
    let releaseFiles = () => {};
    try {
      const { tables, dates } = await this.guard(conn, sql);
      for (const name of tables) {
        const side = this.sideTables.get(name);
        if (side) await loadSideTable(conn, name, side, opts.appId ?? null);
      }
      // Only the days the query can read are opened (with S3: fetched into the cache).
      const relation = await this.openEvents({ ...narrowDays(opts.files ?? {}, dates), appId: opts.appId });
      releaseFiles = relation.release;
      if (this.viewOf.get(conn) !== relation.sql) {
        await conn.run(`CREATE OR REPLACE TEMP VIEW events AS ${relation.sql}`);
        this.viewOf.set(conn, relation.sql);
      }
      const timer = setTimeout(() => conn.interrupt(), opts.timeoutMs);
      let reader;
      try {
        reader = await conn.streamAndReadUntil(sql, opts.rowLimit + 1);
      } catch (err) {
        const msg = (err as Error).message ?? String(err);
        if (/interrupt/i.test(msg)) {
          healthy = false;
          this.metrics.queryRefused.inc({ reason: 'timeout' });
          throw new HttpError(408, 'query_timeout', `query ran longer than ${opts.timeoutMs} ms`, 'sql');
        }
        throw new HttpError(400, 'sql_error', msg.replace(/\n+/g, ' ').slice(0, 2000), 'sql');
      } finally {
        clearTimeout(timer);
      }
      const types = reader.columnTypes().map((t) => t.toString());
      const all = reader.getRowsJS();
      const truncated = all.length > opts.rowLimit;
      const rows = (truncated ? all.slice(0, opts.rowLimit) : all).map((row) => row.map((v, i) => toJsonValue(v, types[i])));
      const elapsedMs = performance.now() - started;
      this.metrics.queryDuration.observe({ endpoint: opts.endpoint ?? 'sql' }, elapsedMs / 1000);
      return { columns: reader.columnNames(), types, rows, truncated, elapsedMs: Math.round(elapsedMs * 10) / 10 };
    } finally {
      releaseFiles();
      if (healthy) this.release(conn);
      else conn.closeSync();
    }
  }

  /** The `events` relation for this query, its files held readable until release. */
  private async openEvents(filter: FileFilter): Promise<{ sql: string; release(): void }> {
    try {
      return await this.warehouse.openEventsRelation(filter);
    } catch (err) {
      if (err instanceof CacheTooSmallError) {
        this.metrics.queryRefused.inc({ reason: 'scan_too_large' });
        throw new HttpError(400, 'scan_too_large', `${err.message}: narrow the query to fewer days, or raise S3_CACHE_BYTES`, 'sql');
      }
      throw err;
    }
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.closeSync();
  }
}
