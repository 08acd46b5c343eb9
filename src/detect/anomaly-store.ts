// Where anomalies live: a small port (insert idempotently, list with filters and cursor paging, get, set status) and
// its SQLite implementation on the node's state store. A PostgreSQL implementation (scale-out) implements the same
// interface over the same columns. Also the detector snapshot store (engine state + the stream position it covers).
import { ANOMALY_STATUSES, SEVERITIES, type Anomaly, type AnomalyStatus, type EntityType, type Severity } from './anomaly.js';
import { migrate, type SqliteDb } from '../state/sqlite.js';

export interface StoredAnomaly extends Anomaly {
  status: AnomalyStatus;
  /** When the store first saw it (epoch ms). */
  createdAt: number;
  /** Last status change (epoch ms). */
  updatedAt: number;
}

export interface AnomalyFilter {
  appId?: string;
  /** Restrict to these apps (an API key's scope); combined with appId. */
  appIds?: readonly string[];
  entityType?: EntityType;
  entityId?: string;
  /** Minimum severity (low < medium < high < critical). */
  minSeverity?: Severity;
  severity?: Severity;
  source?: string;
  category?: string;
  status?: AnomalyStatus;
  /** Event time bounds, epoch ms, inclusive from / exclusive to. */
  from?: number;
  to?: number;
}

export interface AnomalyPage {
  items: StoredAnomaly[];
  /** Pass as `cursor` for the next page; null when this was the last. */
  nextCursor: string | null;
}

export interface AnomalyStore {
  /** Inserts anomalies in one transaction; an id already stored is left as it is. Returns the ones that were new. */
  insert(anomalies: readonly Anomaly[]): Promise<Anomaly[]>;
  /** Newest first (event time, then id). */
  list(filter?: AnomalyFilter, page?: { limit?: number; cursor?: string | null }): Promise<AnomalyPage>;
  get(id: string): Promise<StoredAnomaly | null>;
  /** False when no anomaly has this id. */
  setStatus(id: string, status: AnomalyStatus): Promise<boolean>;
  close(): Promise<void>;
}

export class CursorError extends Error {
  constructor() {
    super('cursor is not one this API returned');
    this.name = 'CursorError';
  }
}

const MIGRATIONS = [
  `CREATE TABLE anomalies (
     id TEXT PRIMARY KEY,
     app_id TEXT NOT NULL,
     entity_type TEXT NOT NULL,
     entity_id TEXT NOT NULL,
     device_id TEXT,
     user_id TEXT,
     session_id TEXT,
     ip_hash TEXT,
     ts INTEGER NOT NULL,
     score REAL NOT NULL,
     severity TEXT NOT NULL,
     severity_rank INTEGER NOT NULL,
     source TEXT NOT NULL,
     category TEXT NOT NULL,
     explanation TEXT NOT NULL,
     event_ids TEXT NOT NULL,
     details TEXT NOT NULL,
     status TEXT NOT NULL DEFAULT 'open',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX anomalies_app_ts ON anomalies (app_id, ts DESC, id DESC);
   CREATE INDEX anomalies_entity ON anomalies (entity_type, entity_id, ts DESC);
   CREATE INDEX anomalies_ts ON anomalies (ts DESC, id DESC);`,
  `CREATE TABLE detector_snapshots (
     name TEXT PRIMARY KEY,
     data BLOB NOT NULL,
     position TEXT,
     events INTEGER NOT NULL,
     saved_at INTEGER NOT NULL
   );`,
];

/** Tables of the detect area in the state store (anomalies and detector snapshots). */
export function migrateDetectStore(db: SqliteDb): void {
  migrate(db, 'detect', MIGRATIONS);
}

export interface AnomalyRow {
  id: string;
  app_id: string;
  entity_type: EntityType;
  entity_id: string;
  device_id: string | null;
  user_id: string | null;
  session_id: string | null;
  ip_hash: string | null;
  ts: number;
  score: number;
  severity: Severity;
  source: string;
  category: string;
  explanation: string;
  event_ids: string;
  details: string;
  status: AnomalyStatus;
  created_at: number;
  updated_at: number;
}

export const anomalyFromRow = (r: AnomalyRow): StoredAnomaly => ({
  id: r.id,
  appId: r.app_id,
  entityType: r.entity_type,
  entityId: r.entity_id,
  deviceId: r.device_id,
  userId: r.user_id,
  sessionId: r.session_id,
  ipHash: r.ip_hash,
  ts: r.ts,
  score: r.score,
  severity: r.severity,
  source: r.source,
  category: r.category,
  explanation: r.explanation,
  eventIds: JSON.parse(r.event_ids) as string[],
  details: JSON.parse(r.details) as Record<string, unknown>,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const encodeCursor = (ts: number, id: string) => Buffer.from(`${ts}|${id}`).toString('base64url');
export function decodeCursor(c: string): { ts: number; id: string } {
  const s = Buffer.from(c, 'base64url').toString('utf8');
  const i = s.indexOf('|');
  const ts = Number(s.slice(0, i));
  if (i <= 0 || !Number.isFinite(ts)) throw new CursorError();
  return { ts, id: s.slice(i + 1) };
}

/**
 * The list query of both stores (same filters, order and cursor): `param` adds a value and returns its placeholder.
 * Null when the filter matches nothing (an empty app scope).
 */
export function anomalyListQuery(
  f: AnomalyFilter,
  page: { limit?: number; cursor?: string | null },
  param: (v: unknown) => string,
): { sql: string; limit: number } | null {
  const where: string[] = [];
  const eq = (col: string, v: unknown) => {
    if (v !== undefined) where.push(`${col} = ${param(v)}`);
  };
  eq('app_id', f.appId);
  if (f.appIds) {
    if (f.appIds.length === 0) return null;
    where.push(`app_id IN (${f.appIds.map((a) => param(a)).join(',')})`);
  }
  eq('entity_type', f.entityType);
  eq('entity_id', f.entityId);
  eq('severity', f.severity);
  eq('source', f.source);
  eq('category', f.category);
  eq('status', f.status);
  if (f.minSeverity !== undefined) where.push(`severity_rank >= ${param(SEVERITIES.indexOf(f.minSeverity))}`);
  if (f.from !== undefined) where.push(`ts >= ${param(f.from)}`);
  if (f.to !== undefined) where.push(`ts < ${param(f.to)}`);
  if (page.cursor) {
    const c = decodeCursor(page.cursor);
    where.push(`(ts < ${param(c.ts)} OR (ts = ${param(c.ts)} AND id < ${param(c.id)}))`);
  }
  const limit = Math.max(1, Math.min(page.limit ?? 100, 1000));
  return { sql: `SELECT * FROM anomalies ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ts DESC, id DESC LIMIT ${param(limit + 1)}`, limit };
}

/** One page from the `limit + 1` rows the list query returned. */
export function anomalyPage(rows: AnomalyRow[], limit: number): AnomalyPage {
  const items = rows.slice(0, limit).map(anomalyFromRow);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.ts, last.id) : null };
}

export class SqliteAnomalyStore implements AnomalyStore {
  private readonly insertStmt;
  private readonly getStmt;
  private readonly statusStmt;

  /**
   * @param withinInsert runs inside the insert's transaction with the anomalies that were new (the webhook outbox
   *   writes their deliveries there: an anomaly is never stored without them). If it throws, nothing is stored.
   */
  constructor(
    private readonly db: SqliteDb,
    private readonly now: () => number = Date.now,
    private readonly withinInsert?: (fresh: readonly Anomaly[], now: number) => void,
  ) {
    migrateDetectStore(db);
    this.insertStmt = db.prepare(
      `INSERT OR IGNORE INTO anomalies (id, app_id, entity_type, entity_id, device_id, user_id, session_id, ip_hash, ts, score, severity,
         severity_rank, source, category, explanation, event_ids, details, status, created_at, updated_at)
       VALUES (@id, @appId, @entityType, @entityId, @deviceId, @userId, @sessionId, @ipHash, @ts, @score, @severity,
         @severityRank, @source, @category, @explanation, @eventIds, @details, 'open', @now, @now)`,
    );
    this.getStmt = db.prepare('SELECT * FROM anomalies WHERE id = ?');
    this.statusStmt = db.prepare('UPDATE anomalies SET status = ?, updated_at = ? WHERE id = ?');
  }

  async insert(anomalies: readonly Anomaly[]): Promise<Anomaly[]> {
    const now = this.now();
    const added: Anomaly[] = [];
    this.db.transaction(() => {
      for (const a of anomalies) {
        const { changes } = this.insertStmt.run({
          id: a.id,
          appId: a.appId,
          entityType: a.entityType,
          entityId: a.entityId,
          deviceId: a.deviceId,
          userId: a.userId,
          sessionId: a.sessionId,
          ipHash: a.ipHash,
          ts: a.ts,
          score: a.score,
          severity: a.severity,
          severityRank: SEVERITIES.indexOf(a.severity),
          source: a.source,
          category: a.category,
          explanation: a.explanation,
          eventIds: JSON.stringify(a.eventIds),
          details: JSON.stringify(a.details),
          now,
        });
        if (changes > 0) added.push(a);
      }
      if (added.length && this.withinInsert) this.withinInsert(added, now);
    })();
    return added;
  }

  async list(f: AnomalyFilter = {}, page: { limit?: number; cursor?: string | null } = {}): Promise<AnomalyPage> {
    const args: unknown[] = [];
    const q = anomalyListQuery(f, page, (v) => (args.push(v), '?'));
    if (!q) return { items: [], nextCursor: null };
    return anomalyPage(this.db.prepare(q.sql).all(...args) as AnomalyRow[], q.limit);
  }

  async get(id: string): Promise<StoredAnomaly | null> {
    const r = this.getStmt.get(id) as AnomalyRow | undefined;
    return r ? anomalyFromRow(r) : null;
  }

  async setStatus(id: string, status: AnomalyStatus): Promise<boolean> {
    if (!ANOMALY_STATUSES.includes(status)) throw new Error(`status must be one of ${ANOMALY_STATUSES.join(', ')}`);
    return this.statusStmt.run(status, this.now(), id).changes > 0;
  }

  async close(): Promise<void> {
    // The database handle belongs to the node's state store; its owner closes it.
  }
}

/** Detector snapshots: the engine's state and the stream position (e.g. bus offset) it includes. */
export interface SnapshotStore {
  save(name: string, data: Buffer, position: string | null, events: number): Promise<void>;
  load(name: string): Promise<{ data: Buffer; position: string | null; events: number; savedAt: number } | null>;
}

export class SqliteSnapshotStore implements SnapshotStore {
  constructor(
    private readonly db: SqliteDb,
    private readonly now: () => number = Date.now,
  ) {
    migrateDetectStore(db);
  }

  async save(name: string, data: Buffer, position: string | null, events: number): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO detector_snapshots (name, data, position, events, saved_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET data = excluded.data, position = excluded.position, events = excluded.events, saved_at = excluded.saved_at`,
      )
      .run(name, data, position, events, this.now());
  }

  async load(name: string) {
    const r = this.db.prepare('SELECT data, position, events, saved_at FROM detector_snapshots WHERE name = ?').get(name) as
      | { data: Buffer; position: string | null; events: number; saved_at: number }
      | undefined;
    return r ? { data: r.data, position: r.position, events: r.events, savedAt: r.saved_at } : null;
  }
}

/** The newest anomalies as the SQL table `anomalies` (beside `events`; an app key sees its app only). */
export function anomalyTable(store: AnomalyStore, maxRows = 100_000) {
  return {
    columns: {
      id: 'VARCHAR', app_id: 'VARCHAR', entity_type: 'VARCHAR', entity_id: 'VARCHAR', device_id: 'VARCHAR', user_id: 'VARCHAR',
      session_id: 'VARCHAR', ip_hash: 'VARCHAR', ts: 'TIMESTAMP', score: 'DOUBLE', severity: 'VARCHAR', source: 'VARCHAR',
      category: 'VARCHAR', explanation: 'VARCHAR', status: 'VARCHAR', event_ids: 'VARCHAR[]', details: 'JSON', created_at: 'TIMESTAMP',
    },
    async rows(appId: string | null) {
      const out: Array<Record<string, unknown>> = [];
      let cursor: string | null = null;
      do {
        const page = await store.list(appId ? { appId } : {}, { limit: 1000, cursor });
        for (const a of page.items) {
          out.push({
            id: a.id, app_id: a.appId, entity_type: a.entityType, entity_id: a.entityId, device_id: a.deviceId, user_id: a.userId,
            session_id: a.sessionId, ip_hash: a.ipHash, ts: new Date(a.ts).toISOString(), score: a.score, severity: a.severity,
            source: a.source, category: a.category, explanation: a.explanation, status: a.status, event_ids: a.eventIds,
            details: a.details, created_at: new Date(a.createdAt).toISOString(),
          });
        }
        cursor = page.nextCursor;
      } while (cursor && out.length < maxRows);
      return out;
    },
  };
}
