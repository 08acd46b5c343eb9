// The causal engine's state in PostgreSQL (scale-out): the same tables and port as SqliteCausalStore. Keys and ids
// compare bytewise (COLLATE "C") so every listing orders exactly as SQLite's.
import type { Change } from './changes.js';
import type { MonitorSnapshot } from './monitor.js';
import type { RiskAssessment } from './risk.js';
import { appKey, appOf, seriesInfos, type AppScope, type CausalStore, type Incident, type IncidentStatus, type SeriesDefinition, type SeriesDefinitionRow, type SeriesInfo, type SeriesStatsRow, type StoredPoint } from './store.js';
import { migratePg, params, withTransaction, type PgPool } from '../state/postgres.js';

const MIGRATIONS = [
  `CREATE TABLE causal_points (app TEXT COLLATE "C" NOT NULL, series TEXT COLLATE "C" NOT NULL, segment TEXT COLLATE "C" NOT NULL, ts BIGINT NOT NULL,
     value DOUBLE PRECISION NOT NULL, PRIMARY KEY (app, series, segment, ts));
   CREATE TABLE causal_series_defs (app TEXT COLLATE "C" NOT NULL, series TEXT COLLATE "C" NOT NULL, sql TEXT NOT NULL, interval_ms BIGINT NOT NULL,
     last_run_at BIGINT, last_error TEXT, PRIMARY KEY (app, series));
   CREATE TABLE causal_changes (app TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, time_ms BIGINT NOT NULL, body TEXT NOT NULL,
     received_at BIGINT NOT NULL, PRIMARY KEY (app, id));
   CREATE INDEX causal_changes_time ON causal_changes (app, time_ms);
   CREATE TABLE causal_incidents (id TEXT COLLATE "C" PRIMARY KEY, app TEXT COLLATE "C" NOT NULL, series TEXT NOT NULL, segment TEXT NOT NULL,
     status TEXT NOT NULL, onset_ms BIGINT NOT NULL, body TEXT NOT NULL, updated_at BIGINT NOT NULL);
   CREATE INDEX causal_incidents_open ON causal_incidents (app, series, segment, status);
   CREATE TABLE causal_monitor_state (app TEXT NOT NULL, series TEXT NOT NULL, segment TEXT NOT NULL, state TEXT NOT NULL, updated_at BIGINT NOT NULL,
     PRIMARY KEY (app, series, segment));`,
];

const FAR = 8.64e15;

export class PgCausalStore implements CausalStore {
  private constructor(private readonly pool: PgPool) {}

  /** Migrates the causal tables and returns the store (the pool belongs to the caller). */
  static async open(pool: PgPool): Promise<PgCausalStore> {
    await migratePg(pool, 'causal', MIGRATIONS);
    return new PgCausalStore(pool);
  }

  async upsertPoints(appId: AppScope, name: string, points: readonly StoredPoint[]): Promise<number> {
    // One row per (segment, ts), the last given winning (one statement may not update a row twice).
    const last = new Map<string, StoredPoint & { ts: number }>();
    for (const p of points) {
      const ts = Math.round(p.ts);
      last.set(`${p.segment}\u0000${ts}`, { ...p, ts });
    }
    const rows = [...last.values()];
    if (rows.length) {
      await this.pool.query(
        `INSERT INTO causal_points (app, series, segment, ts, value)
         SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[], $5::float8[])
         ON CONFLICT (app, series, segment, ts) DO UPDATE SET value = excluded.value`,
        [appKey(appId), name, rows.map((p) => p.segment), rows.map((p) => p.ts), rows.map((p) => p.value)],
      );
    }
    return points.length;
  }

  async readPoints(appId: AppScope, name: string, q: { from?: number; to?: number; segment?: string } = {}): Promise<StoredPoint[]> {
    const { rows } = await this.pool.query<StoredPoint>(
      'SELECT ts, value, segment FROM causal_points WHERE app = $1 AND series = $2 AND segment = $3 AND ts >= $4 AND ts < $5 ORDER BY ts',
      [appKey(appId), name, q.segment ?? '', Math.ceil(q.from ?? -FAR), Math.ceil(q.to ?? FAR)],
    );
    return rows;
  }

  async listSeries(appId: AppScope | undefined): Promise<SeriesInfo[]> {
    const where = appId === undefined ? '' : 'WHERE app = $1';
    const args = appId === undefined ? [] : [appKey(appId)];
    const stats = (
      await this.pool.query<SeriesStatsRow>(
        `SELECT app, series, count(*) AS n, min(ts) AS first, max(ts) AS last, string_agg(DISTINCT segment, ',') AS segs FROM causal_points ${where} GROUP BY app, series`,
        args,
      )
    ).rows;
    const defs = (await this.pool.query<SeriesDefinitionRow>(`SELECT * FROM causal_series_defs ${where}`, args)).rows;
    return seriesInfos(defs, stats);
  }

  async putDefinition(def: Omit<SeriesDefinition, 'lastRunAt' | 'lastError'>): Promise<void> {
    await this.pool.query(
      `INSERT INTO causal_series_defs (app, series, sql, interval_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (app, series) DO UPDATE SET sql = excluded.sql, interval_ms = excluded.interval_ms`,
      [appKey(def.appId), def.name, def.sql, def.intervalMs],
    );
  }

  async listDefinitions(): Promise<SeriesDefinition[]> {
    const { rows } = await this.pool.query<SeriesDefinitionRow>('SELECT * FROM causal_series_defs ORDER BY app, series');
    return rows.map((d) => ({ appId: appOf(d.app), name: d.series, sql: d.sql, intervalMs: d.interval_ms, lastRunAt: d.last_run_at, lastError: d.last_error }));
  }

  async markDefinitionRun(appId: AppScope, name: string, at: number, error: string | null): Promise<void> {
    await this.pool.query('UPDATE causal_series_defs SET last_run_at = $1, last_error = $2 WHERE app = $3 AND series = $4', [at, error, appKey(appId), name]);
  }

  async insertChange(change: Change): Promise<{ change: Change; created: boolean }> {
    const r = await this.pool.query(
      'INSERT INTO causal_changes (app, id, time_ms, body, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
      [appKey(change.appId), change.id, Date.parse(change.time), JSON.stringify(change), Date.now()],
    );
    if ((r.rowCount ?? 0) === 0) return { change: (await this.getChange(change.appId, change.id))!, created: false };
    return { change, created: true };
  }

  async getChange(appId: AppScope, id: string): Promise<Change | null> {
    const row = (await this.pool.query<{ body: string }>('SELECT body FROM causal_changes WHERE app = $1 AND id = $2', [appKey(appId), id])).rows[0];
    return row ? (JSON.parse(row.body) as Change) : null;
  }

  async listChanges(q: { appId: AppScope | undefined; from?: number; to?: number; limit?: number }): Promise<Change[]> {
    const { args, p } = params();
    const scope = q.appId !== undefined ? `app = ${p(appKey(q.appId))} AND ` : '';
    const { rows } = await this.pool.query<{ body: string }>(
      `SELECT body FROM causal_changes WHERE ${scope}time_ms >= ${p(Math.ceil(q.from ?? -FAR))} AND time_ms < ${p(Math.ceil(q.to ?? FAR))} ORDER BY time_ms, id LIMIT ${p(q.limit ?? 10_000)}`,
      args,
    );
    return rows.map((r) => JSON.parse(r.body) as Change);
  }

  async setChangeRisk(appId: AppScope, id: string, risk: RiskAssessment): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      const row = (await c.query<{ body: string }>('SELECT body FROM causal_changes WHERE app = $1 AND id = $2 FOR UPDATE', [appKey(appId), id])).rows[0];
      if (!row) return;
      await c.query('UPDATE causal_changes SET body = $1 WHERE app = $2 AND id = $3', [JSON.stringify({ ...(JSON.parse(row.body) as Change), risk }), appKey(appId), id]);
    });
  }

  async insertIncident(i: Incident): Promise<void> {
    await this.pool.query(
      'INSERT INTO causal_incidents (id, app, series, segment, status, onset_ms, body, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
      [i.id, appKey(i.appId), i.series, i.segment, i.status, Date.parse(i.onset), JSON.stringify(i), Date.now()],
    );
  }

  async updateIncident(id: string, patch: Partial<Pick<Incident, 'status' | 'resolvedAt' | 'candidates' | 'impact'>>): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      const row = (await c.query<{ body: string }>('SELECT body FROM causal_incidents WHERE id = $1 FOR UPDATE', [id])).rows[0];
      if (!row) return;
      const next = { ...(JSON.parse(row.body) as Incident), ...patch };
      await c.query('UPDATE causal_incidents SET status = $1, body = $2, updated_at = $3 WHERE id = $4', [next.status, JSON.stringify(next), Date.now(), id]);
    });
  }

  async getIncident(id: string): Promise<Incident | null> {
    const row = (await this.pool.query<{ body: string }>('SELECT body FROM causal_incidents WHERE id = $1', [id])).rows[0];
    return row ? (JSON.parse(row.body) as Incident) : null;
  }

  async listIncidents(q: { appId: AppScope | undefined; status?: IncidentStatus; limit?: number }): Promise<Incident[]> {
    const { args, p } = params();
    const conds: string[] = [];
    if (q.appId !== undefined) conds.push(`app = ${p(appKey(q.appId))}`);
    if (q.status) conds.push(`status = ${p(q.status)}`);
    const { rows } = await this.pool.query<{ body: string }>(
      `SELECT body FROM causal_incidents ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''} ORDER BY onset_ms DESC, id LIMIT ${p(q.limit ?? 100)}`,
      args,
    );
    return rows.map((r) => JSON.parse(r.body) as Incident);
  }

  async findOpenIncident(appId: AppScope, series: string, segment: string): Promise<Incident | null> {
    const row = (
      await this.pool.query<{ body: string }>(
        "SELECT body FROM causal_incidents WHERE app = $1 AND series = $2 AND segment = $3 AND status = 'open' ORDER BY onset_ms DESC LIMIT 1",
        [appKey(appId), series, segment],
      )
    ).rows[0];
    return row ? (JSON.parse(row.body) as Incident) : null;
  }

  async loadMonitor(appId: AppScope, series: string, segment: string): Promise<MonitorSnapshot | null> {
    const row = (
      await this.pool.query<{ state: string }>('SELECT state FROM causal_monitor_state WHERE app = $1 AND series = $2 AND segment = $3', [appKey(appId), series, segment])
    ).rows[0];
    return row ? (JSON.parse(row.state) as MonitorSnapshot) : null;
  }

  async saveMonitor(appId: AppScope, series: string, segment: string, state: MonitorSnapshot): Promise<void> {
    await this.pool.query(
      `INSERT INTO causal_monitor_state (app, series, segment, state, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (app, series, segment) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      [appKey(appId), series, segment, JSON.stringify(state), Date.now()],
    );
  }

  async close(): Promise<void> {
    // The pool belongs to the process's state stores; their owner ends it.
  }
}
