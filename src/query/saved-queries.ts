// Saved SQL queries of the explore page: a name, the SQL, and the app they belong to (null = the admin's).
// One port (SavedQueryStore): SQLite in the node's state database, or PostgreSQL (DATABASE_URL).
import { randomUUID } from 'node:crypto';
import { migratePg, type PgPool } from '../state/postgres.js';
import { migrate, type SqliteDb } from '../state/sqlite.js';

export interface SavedQuery {
  id: string;
  /** The owning app (an app key's), or null for the admin's. */
  appId: string | null;
  name: string;
  sql: string;
  createdAt: string;
}

export interface SavedQueryStore {
  /** appId undefined = every app's (admin); otherwise that scope only. */
  list(appId: string | null | undefined): Promise<SavedQuery[]>;
  get(id: string): Promise<SavedQuery | null>;
  /** Saving a name that exists in the same scope replaces its SQL (same id). */
  save(q: { appId: string | null; name: string; sql: string }, now?: number): Promise<SavedQuery>;
  remove(id: string): Promise<boolean>;
}

const MIGRATIONS = [
  `CREATE TABLE saved_queries (id TEXT PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, sql TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE UNIQUE INDEX saved_queries_name ON saved_queries (app, name);`,
];

interface Row {
  id: string;
  app: string;
  name: string;
  sql: string;
  created_at: number;
}

const view = (r: Row): SavedQuery => ({ id: r.id, appId: r.app === '' ? null : r.app, name: r.name, sql: r.sql, createdAt: new Date(r.created_at).toISOString() });

export class SqliteSavedQueryStore implements SavedQueryStore {
  constructor(private readonly db: SqliteDb) {
    migrate(db, 'saved_queries', MIGRATIONS);
  }

  async list(appId: string | null | undefined): Promise<SavedQuery[]> {
    const rows = (appId === undefined
      ? this.db.prepare('SELECT * FROM saved_queries ORDER BY name, app').all()
      : this.db.prepare('SELECT * FROM saved_queries WHERE app = ? ORDER BY name').all(appId ?? '')) as Row[];
    return rows.map(view);
  }

  async get(id: string): Promise<SavedQuery | null> {
    const r = this.db.prepare('SELECT * FROM saved_queries WHERE id = ?').get(id) as Row | undefined;
    return r ? view(r) : null;
  }

  async save(q: { appId: string | null; name: string; sql: string }, now = Date.now()): Promise<SavedQuery> {
    const row = this.db
      .prepare(
        `INSERT INTO saved_queries (id, app, name, sql, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (app, name) DO UPDATE SET sql = excluded.sql RETURNING *`,
      )
      .get(randomUUID(), q.appId ?? '', q.name, q.sql, now) as Row;
    return view(row);
  }

  async remove(id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM saved_queries WHERE id = ?').run(id).changes > 0;
  }
}

// The same table in PostgreSQL (created_at in epoch ms, as in SQLite).
const PG_MIGRATIONS = [
  `CREATE TABLE saved_queries (id TEXT PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, sql TEXT NOT NULL, created_at BIGINT NOT NULL);
   CREATE UNIQUE INDEX saved_queries_name ON saved_queries (app, name);`,
];

const pgView = (r: Omit<Row, 'created_at'> & { created_at: string | number }): SavedQuery => view({ ...r, created_at: Number(r.created_at) });

export class PgSavedQueryStore implements SavedQueryStore {
  private constructor(private readonly pool: PgPool) {}

  static async open(pool: PgPool): Promise<PgSavedQueryStore> {
    await migratePg(pool, 'saved_queries', PG_MIGRATIONS);
    return new PgSavedQueryStore(pool);
  }

  async list(appId: string | null | undefined): Promise<SavedQuery[]> {
    const r =
      appId === undefined
        ? await this.pool.query('SELECT * FROM saved_queries ORDER BY name, app')
        : await this.pool.query('SELECT * FROM saved_queries WHERE app = $1 ORDER BY name', [appId ?? '']);
    return r.rows.map(pgView);
  }

  async get(id: string): Promise<SavedQuery | null> {
    const r = await this.pool.query('SELECT * FROM saved_queries WHERE id = $1', [id]);
    return r.rows[0] ? pgView(r.rows[0]) : null;
  }

  async save(q: { appId: string | null; name: string; sql: string }, now = Date.now()): Promise<SavedQuery> {
    const r = await this.pool.query(
      `INSERT INTO saved_queries (id, app, name, sql, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (app, name) DO UPDATE SET sql = excluded.sql RETURNING *`,
      [randomUUID(), q.appId ?? '', q.name, q.sql, now],
    );
    return pgView(r.rows[0]);
  }

  async remove(id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM saved_queries WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }
}
