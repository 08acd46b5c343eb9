// The causal engine's state: series points and SQL definitions, change events, incidents and monitor snapshots.
// One port (CausalStore) with the embedded SQLite implementation here; a PostgreSQL one mirrors the same tables.
import type { Change } from './changes.js';
import type { ImpactResult } from './impact.js';
import type { Direction, MonitorSnapshot } from './monitor.js';
import type { RiskAssessment } from './risk.js';
import type { Candidate } from './rootcause.js';
import { migrate, openSqlite, type SqliteDb } from '../state/sqlite.js';

/** App scope of a stored thing: an app id, or null for admin-owned (all apps). */
export type AppScope = string | null;

export interface StoredPoint {
  ts: number;
  value: number;
  /** '' for the whole metric; `k=v,k2=v2` (sorted) or the SQL segment column's value otherwise. */
  segment: string;
}

export interface SeriesDefinition {
  appId: AppScope;
  name: string;
  sql: string;
  intervalMs: number;
  lastRunAt: number | null;
  lastError: string | null;
}

export interface SeriesInfo {
  appId: AppScope;
  name: string;
  kind: 'pushed' | 'sql';
  points: number;
  segments: string[];
  first: string | null;
  last: string | null;
  definition: { sql: string; intervalMs: number; lastRunAt: string | null; lastError: string | null } | null;
}

export type IncidentStatus = 'open' | 'resolved';

export interface Incident {
  id: string;
  appId: AppScope;
  series: string;
  segment: string;
  direction: Direction;
  onset: string;
  detectedAt: string;
  status: IncidentStatus;
  resolvedAt: string | null;
  score: number;
  explanation: string;
  candidates: Candidate[];
  impact: ImpactResult | null;
}

export interface CausalStore {
  upsertPoints(appId: AppScope, name: string, points: readonly StoredPoint[]): Promise<number>;
  readPoints(appId: AppScope, name: string, q?: { from?: number; to?: number; segment?: string }): Promise<StoredPoint[]>;
  listSeries(appId: AppScope | undefined): Promise<SeriesInfo[]>;
  putDefinition(def: Omit<SeriesDefinition, 'lastRunAt' | 'lastError'>): Promise<void>;
  listDefinitions(): Promise<SeriesDefinition[]>;
  markDefinitionRun(appId: AppScope, name: string, at: number, error: string | null): Promise<void>;

  /** Idempotent on (app, id): an existing change is returned unchanged with created=false. */
  insertChange(change: Change): Promise<{ change: Change; created: boolean }>;
  getChange(appId: AppScope, id: string): Promise<Change | null>;
  /** appId undefined = every app (admin); otherwise that scope only. */
  listChanges(q: { appId: AppScope | undefined; from?: number; to?: number; limit?: number }): Promise<Change[]>;
  setChangeRisk(appId: AppScope, id: string, risk: RiskAssessment): Promise<void>;

  insertIncident(incident: Incident): Promise<void>;
  updateIncident(id: string, patch: Partial<Pick<Incident, 'status' | 'resolvedAt' | 'candidates' | 'impact'>>): Promise<void>;
  getIncident(id: string): Promise<Incident | null>;
  listIncidents(q: { appId: AppScope | undefined; status?: IncidentStatus; limit?: number }): Promise<Incident[]>;
  findOpenIncident(appId: AppScope, series: string, segment: string): Promise<Incident | null>;

  loadMonitor(appId: AppScope, series: string, segment: string): Promise<MonitorSnapshot | null>;
  saveMonitor(appId: AppScope, series: string, segment: string, state: MonitorSnapshot): Promise<void>;
  close(): Promise<void>;
}

const MIGRATIONS = [
  `CREATE TABLE causal_points (app TEXT NOT NULL, series TEXT NOT NULL, segment TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
     PRIMARY KEY (app, series, segment, ts)) WITHOUT ROWID;
   CREATE TABLE causal_series_defs (app TEXT NOT NULL, series TEXT NOT NULL, sql TEXT NOT NULL, interval_ms INTEGER NOT NULL,
     last_run_at INTEGER, last_error TEXT, PRIMARY KEY (app, series));
   CREATE TABLE causal_changes (app TEXT NOT NULL, id TEXT NOT NULL, time_ms INTEGER NOT NULL, body TEXT NOT NULL, received_at INTEGER NOT NULL,
     PRIMARY KEY (app, id));
   CREATE INDEX causal_changes_time ON causal_changes (app, time_ms);
   CREATE TABLE causal_incidents (id TEXT PRIMARY KEY, app TEXT NOT NULL, series TEXT NOT NULL, segment TEXT NOT NULL, status TEXT NOT NULL,
     onset_ms INTEGER NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL);
   CREATE INDEX causal_incidents_open ON causal_incidents (app, series, segment, status);
   CREATE TABLE causal_monitor_state (app TEXT NOT NULL, series TEXT NOT NULL, segment TEXT NOT NULL, state TEXT NOT NULL, updated_at INTEGER NOT NULL,
     PRIMARY KEY (app, series, segment));`,
];

export const appKey = (a: AppScope): string => a ?? '';
export const appOf = (k: string): AppScope => (k === '' ? null : k);

/** A row of causal_series_defs (both stores). */
export interface SeriesDefinitionRow {
  app: string;
  series: string;
  sql: string;
  interval_ms: number;
  last_run_at: number | null;
  last_error: string | null;
}

/** Per (app, series): point count, time range and segments joined by commas (both stores). */
export interface SeriesStatsRow {
  app: string;
  series: string;
  n: number;
  first: number;
  last: number;
  segs: string | null;
}

/** listSeries of both stores: definitions and pushed points merged per (app, series), by name then app. */
export function seriesInfos(defs: readonly SeriesDefinitionRow[], stats: readonly SeriesStatsRow[]): SeriesInfo[] {
  const out = new Map<string, SeriesInfo>();
  for (const d of defs) {
    out.set(`${d.app}\u0000${d.series}`, {
      appId: appOf(d.app),
      name: d.series,
      kind: 'sql',
      points: 0,
      segments: [],
      first: null,
      last: null,
      definition: { sql: d.sql, intervalMs: d.interval_ms, lastRunAt: d.last_run_at === null ? null : new Date(d.last_run_at).toISOString(), lastError: d.last_error },
    });
  }
  for (const s of stats) {
    const k = `${s.app}\u0000${s.series}`;
    const info = out.get(k) ?? { appId: appOf(s.app), name: s.series, kind: 'pushed' as const, points: 0, segments: [], first: null, last: null, definition: null };
    info.points = s.n;
    info.segments = (s.segs ?? '').split(',').filter((x) => x !== '').sort();
    info.first = new Date(s.first).toISOString();
    info.last = new Date(s.last).toISOString();
    out.set(k, info);
  }
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name) || appKey(a.appId).localeCompare(appKey(b.appId)));
}

export class SqliteCausalStore implements CausalStore {
  private readonly db: SqliteDb;
  private readonly ownsDb: boolean;

  /** Opens (or shares) a SQLite database: a path opens its own connection, a handle is shared with other stores. */
  constructor(dbOrPath: SqliteDb | string) {
    this.ownsDb = typeof dbOrPath === 'string';
    this.db = typeof dbOrPath === 'string' ? openSqlite(dbOrPath) : dbOrPath;
    migrate(this.db, 'causal', MIGRATIONS);
  }

  async upsertPoints(appId: AppScope, name: string, points: readonly StoredPoint[]): Promise<number> {
    const stmt = this.db.prepare('INSERT INTO causal_points (app, series, segment, ts, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value');
    this.db.transaction(() => {
      for (const p of points) stmt.run(appKey(appId), name, p.segment, Math.round(p.ts), p.value);
    })();
    return points.length;
  }

  async readPoints(appId: AppScope, name: string, q: { from?: number; to?: number; segment?: string } = {}): Promise<StoredPoint[]> {
    const rows = this.db
      .prepare('SELECT ts, value, segment FROM causal_points WHERE app = ? AND series = ? AND segment = ? AND ts >= ? AND ts < ? ORDER BY ts')
      .all(appKey(appId), name, q.segment ?? '', q.from ?? -8.64e15, q.to ?? 8.64e15) as StoredPoint[];
    return rows;
  }

  async listSeries(appId: AppScope | undefined): Promise<SeriesInfo[]> {
    const where = appId === undefined ? '' : 'WHERE app = ?';
    const args = appId === undefined ? [] : [appKey(appId)];
    const stats = this.db
      .prepare(`SELECT app, series, count(*) AS n, min(ts) AS first, max(ts) AS last, group_concat(DISTINCT segment) AS segs FROM causal_points ${where} GROUP BY app, series`)
      .all(...args) as SeriesStatsRow[];
    const defs = this.db.prepare(`SELECT * FROM causal_series_defs ${where}`).all(...args) as SeriesDefinitionRow[];
    return seriesInfos(defs, stats);
  }

  async putDefinition(def: Omit<SeriesDefinition, 'lastRunAt' | 'lastError'>): Promise<void> {
    this.db
      .prepare('INSERT INTO causal_series_defs (app, series, sql, interval_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET sql = excluded.sql, interval_ms = excluded.interval_ms')
      .run(appKey(def.appId), def.name, def.sql, def.intervalMs);
  }

  async listDefinitions(): Promise<SeriesDefinition[]> {
    return (this.db.prepare('SELECT * FROM causal_series_defs ORDER BY app, series').all() as Array<{ app: string; series: string; sql: string; interval_ms: number; last_run_at: number | null; last_error: string | null }>).map(
      (d) => ({ appId: appOf(d.app), name: d.series, sql: d.sql, intervalMs: d.interval_ms, lastRunAt: d.last_run_at, lastError: d.last_error }),
    );
  }

  async markDefinitionRun(appId: AppScope, name: string, at: number, error: string | null): Promise<void> {
    this.db.prepare('UPDATE causal_series_defs SET last_run_at = ?, last_error = ? WHERE app = ? AND series = ?').run(at, error, appKey(appId), name);
  }

  async insertChange(change: Change): Promise<{ change: Change; created: boolean }> {
    const existing = await this.getChange(change.appId, change.id);
    if (existing) return { change: existing, created: false };
    const r = this.db
      .prepare('INSERT INTO causal_changes (app, id, time_ms, body, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
      .run(appKey(change.appId), change.id, Date.parse(change.time), JSON.stringify(change), Date.now());
    if (r.changes === 0) return { change: (await this.getChange(change.appId, change.id))!, created: false };
    return { change, created: true };
  }

  async getChange(appId: AppScope, id: string): Promise<Change | null> {
    const row = this.db.prepare('SELECT body FROM causal_changes WHERE app = ? AND id = ?').get(appKey(appId), id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as Change) : null;
  }

  async listChanges(q: { appId: AppScope | undefined; from?: number; to?: number; limit?: number }): Promise<Change[]> {
    const scoped = q.appId !== undefined;
    const rows = this.db
      .prepare(`SELECT body FROM causal_changes WHERE ${scoped ? 'app = ? AND ' : ''}time_ms >= ? AND time_ms < ? ORDER BY time_ms, id LIMIT ?`)
      .all(...(scoped ? [appKey(q.appId!)] : []), q.from ?? -8.64e15, q.to ?? 8.64e15, q.limit ?? 10_000) as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as Change);
  }

  async setChangeRisk(appId: AppScope, id: string, risk: RiskAssessment): Promise<void> {
    const c = await this.getChange(appId, id);
    if (!c) return;
    this.db.prepare('UPDATE causal_changes SET body = ? WHERE app = ? AND id = ?').run(JSON.stringify({ ...c, risk }), appKey(appId), id);
  }

  async insertIncident(i: Incident): Promise<void> {
    this.db
      .prepare('INSERT INTO causal_incidents (id, app, series, segment, status, onset_ms, body, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(i.id, appKey(i.appId), i.series, i.segment, i.status, Date.parse(i.onset), JSON.stringify(i), Date.now());
  }

  async updateIncident(id: string, patch: Partial<Pick<Incident, 'status' | 'resolvedAt' | 'candidates' | 'impact'>>): Promise<void> {
    const cur = await this.getIncident(id);
    if (!cur) return;
    const next = { ...cur, ...patch };
    this.db.prepare('UPDATE causal_incidents SET status = ?, body = ?, updated_at = ? WHERE id = ?').run(next.status, JSON.stringify(next), Date.now(), id);
  }

  async getIncident(id: string): Promise<Incident | null> {
    const row = this.db.prepare('SELECT body FROM causal_incidents WHERE id = ?').get(id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as Incident) : null;
  }

  async listIncidents(q: { appId: AppScope | undefined; status?: IncidentStatus; limit?: number }): Promise<Incident[]> {
    const conds: string[] = [];
    const args: unknown[] = [];
    if (q.appId !== undefined) {
      conds.push('app = ?');
      args.push(appKey(q.appId));
    }
    if (q.status) {
      conds.push('status = ?');
      args.push(q.status);
    }
    const rows = this.db
      .prepare(`SELECT body FROM causal_incidents ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''} ORDER BY onset_ms DESC, id LIMIT ?`)
      .all(...args, q.limit ?? 100) as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as Incident);
  }

  async findOpenIncident(appId: AppScope, series: string, segment: string): Promise<Incident | null> {
    const row = this.db
      .prepare("SELECT body FROM causal_incidents WHERE app = ? AND series = ? AND segment = ? AND status = 'open' ORDER BY onset_ms DESC LIMIT 1")
      .get(appKey(appId), series, segment) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as Incident) : null;
  }

  async loadMonitor(appId: AppScope, series: string, segment: string): Promise<MonitorSnapshot | null> {
    const row = this.db.prepare('SELECT state FROM causal_monitor_state WHERE app = ? AND series = ? AND segment = ?').get(appKey(appId), series, segment) as { state: string } | undefined;
    return row ? (JSON.parse(row.state) as MonitorSnapshot) : null;
  }

  async saveMonitor(appId: AppScope, series: string, segment: string, state: MonitorSnapshot): Promise<void> {
    this.db
      .prepare('INSERT INTO causal_monitor_state (app, series, segment, state, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at')
      .run(appKey(appId), series, segment, JSON.stringify(state), Date.now());
  }

  async close(): Promise<void> {
    if (this.ownsDb) this.db.close();
  }
}
