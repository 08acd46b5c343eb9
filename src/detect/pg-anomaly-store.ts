// Anomalies and detector snapshots in PostgreSQL (scale-out): the same port, columns, filters, order and cursors as
// the SQLite store. Ids compare bytewise (COLLATE "C") so paging and ties order exactly as SQLite's.
import { ANOMALY_STATUSES, SEVERITIES, type Anomaly, type AnomalyStatus } from './anomaly.js';
import {
  anomalyFromRow,
  anomalyListQuery,
  anomalyPage,
  type AnomalyFilter,
  type AnomalyPage,
  type AnomalyRow,
  type AnomalyStore,
  type SnapshotStore,
  type StoredAnomaly,
} from './anomaly-store.js';
import { migratePg, params, withTransaction, type PgClient, type PgPool } from '../state/postgres.js';

const MIGRATIONS = [
  `CREATE TABLE anomalies (
     id TEXT COLLATE "C" PRIMARY KEY,
     app_id TEXT NOT NULL,
     entity_type TEXT NOT NULL,
     entity_id TEXT NOT NULL,
     device_id TEXT,
     user_id TEXT,
     session_id TEXT,
     ip_hash TEXT,
     ts BIGINT NOT NULL,
     score DOUBLE PRECISION NOT NULL,
     severity TEXT NOT NULL,
     severity_rank INTEGER NOT NULL,
     source TEXT NOT NULL,
     category TEXT NOT NULL,
     explanation TEXT NOT NULL,
     event_ids TEXT NOT NULL,
     details TEXT NOT NULL,
     status TEXT NOT NULL DEFAULT 'open',
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE INDEX anomalies_app_ts ON anomalies (app_id, ts DESC, id DESC);
   CREATE INDEX anomalies_entity ON anomalies (entity_type, entity_id, ts DESC);
   CREATE INDEX anomalies_ts ON anomalies (ts DESC, id DESC);`,
  `CREATE TABLE detector_snapshots (
     name TEXT PRIMARY KEY,
     data BYTEA NOT NULL,
     position TEXT,
     events BIGINT NOT NULL,
     saved_at BIGINT NOT NULL
   );`,
];

export async function migratePgDetectStore(pool: PgPool): Promise<void> {
  await migratePg(pool, 'detect', MIGRATIONS);
}

const COLUMNS = 18;
// 18 parameters a row; PostgreSQL takes at most 65535 per statement.
const ROWS_PER_INSERT = 1000;

/** Runs inside the insert's transaction with the anomalies that were new; if it throws, nothing is stored. */
// PostgreSQL text holds no NUL, and device/user/session ids come from clients (a NUL would fail the detector's insert
// again on every replay): it is stored as U+FFFD.
const text = <T extends string | null>(s: T): T => (s === null ? s : (s.replaceAll('\u0000', '\uFFFD') as T));

export type PgWithinInsert = (client: PgClient, fresh: readonly Anomaly[], now: number) => Promise<void>;

export class PgAnomalyStore implements AnomalyStore {
  private constructor(
    private readonly pool: PgPool,
    private readonly now: () => number,
    private readonly withinInsert: PgWithinInsert | undefined,
  ) {}

  /** Migrates the detect tables, then returns the store (the pool belongs to the caller). */
  static async open(pool: PgPool, o: { now?: () => number; withinInsert?: PgWithinInsert } = {}): Promise<PgAnomalyStore> {
    await migratePgDetectStore(pool);
    return new PgAnomalyStore(pool, o.now ?? Date.now, o.withinInsert);
  }

  /** The same store whose inserts also run `withinInsert` in their transaction. */
  withHook(withinInsert: PgWithinInsert): PgAnomalyStore {
    return new PgAnomalyStore(this.pool, this.now, withinInsert);
  }

  async insert(anomalies: readonly Anomaly[]): Promise<Anomaly[]> {
    const now = this.now();
    // One row per id (the first wins, as INSERT OR IGNORE in SQLite).
    const firstOf = new Map<string, Anomaly>();
    for (const a of anomalies) if (!firstOf.has(a.id)) firstOf.set(a.id, a);
    const unique = [...firstOf.values()];
    if (!unique.length) return [];
    return withTransaction(this.pool, async (c) => {
      const added = new Set<string>();
      for (let i = 0; i < unique.length; i += ROWS_PER_INSERT) {
        const chunk = unique.slice(i, i + ROWS_PER_INSERT);
        const args: unknown[] = [];
        const tuples = chunk.map((a) => {
          const base = args.length;
          args.push(
            a.id, a.appId, a.entityType, text(a.entityId), text(a.deviceId), text(a.userId), text(a.sessionId), a.ipHash, a.ts, a.score, a.severity,
            SEVERITIES.indexOf(a.severity), a.source, a.category, text(a.explanation), JSON.stringify(a.eventIds), JSON.stringify(a.details), now,
          );
          const ph = Array.from({ length: COLUMNS }, (_, k) => `$${base + k + 1}`);
          return `(${ph.slice(0, 17).join(', ')}, 'open', ${ph[17]}, ${ph[17]})`;
        });
        const { rows } = await c.query<{ id: string }>(
          `INSERT INTO anomalies (id, app_id, entity_type, entity_id, device_id, user_id, session_id, ip_hash, ts, score, severity,
             severity_rank, source, category, explanation, event_ids, details, status, created_at, updated_at)
           VALUES ${tuples.join(', ')} ON CONFLICT (id) DO NOTHING RETURNING id`,
          args,
        );
        for (const r of rows) added.add(r.id);
      }
      const fresh = unique.filter((a) => added.has(a.id));
      if (fresh.length && this.withinInsert) await this.withinInsert(c, fresh, now);
      return fresh;
    });
  }

  async list(f: AnomalyFilter = {}, page: { limit?: number; cursor?: string | null } = {}): Promise<AnomalyPage> {
    const { args, p } = params();
    const q = anomalyListQuery(f, page, p);
    if (!q) return { items: [], nextCursor: null };
    return anomalyPage((await this.pool.query<AnomalyRow>(q.sql, args)).rows, q.limit);
  }

  async get(id: string): Promise<StoredAnomaly | null> {
    const { rows } = await this.pool.query<AnomalyRow>('SELECT * FROM anomalies WHERE id = $1', [id]);
    return rows[0] ? anomalyFromRow(rows[0]) : null;
  }

  async setStatus(id: string, status: AnomalyStatus): Promise<boolean> {
    if (!ANOMALY_STATUSES.includes(status)) throw new Error(`status must be one of ${ANOMALY_STATUSES.join(', ')}`);
    const r = await this.pool.query('UPDATE anomalies SET status = $1, updated_at = $2 WHERE id = $3', [status, this.now(), id]);
    return (r.rowCount ?? 0) > 0;
  }

  async close(): Promise<void> {
    // The pool belongs to the process's state stores; their owner ends it.
  }
}

export class PgSnapshotStore implements SnapshotStore {
  private constructor(
    private readonly pool: PgPool,
    private readonly now: () => number,
  ) {}

  static async open(pool: PgPool, o: { now?: () => number } = {}): Promise<PgSnapshotStore> {
    await migratePgDetectStore(pool);
    return new PgSnapshotStore(pool, o.now ?? Date.now);
  }

  async save(name: string, data: Buffer, position: string | null, events: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO detector_snapshots (name, data, position, events, saved_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) DO UPDATE SET data = excluded.data, position = excluded.position, events = excluded.events, saved_at = excluded.saved_at`,
      [name, data, position, events, this.now()],
    );
  }

  async load(name: string) {
    const { rows } = await this.pool.query<{ data: Buffer; position: string | null; events: number; saved_at: number }>(
      'SELECT data, position, events, saved_at FROM detector_snapshots WHERE name = $1',
      [name],
    );
    const r = rows[0];
    return r ? { data: r.data, position: r.position, events: r.events, savedAt: r.saved_at } : null;
  }
}
