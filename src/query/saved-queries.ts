// Saved SQL queries of the explore page: a name, the SQL, and the app they belong to (null = the admin's).
// One port (SavedQueryStore) with the embedded SQLite implementation here, in the node's state database.
import { randomUUID } from 'node:crypto';
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
  list(appId: string | null | undefined): SavedQuery[];
  get(id: string): SavedQuery | null;
  /** Saving a name that exists in the same scope replaces its SQL (same id). */
  save(q: { appId: string | null; name: string; sql: string }, now?: number): SavedQuery;
  remove(id: string): boolean;
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

  list(appId: string | null | undefined): SavedQuery[] {
    const rows = (appId === undefined
      ? this.db.prepare('SELECT * FROM saved_queries ORDER BY name, app').all()
      : this.db.prepare('SELECT * FROM saved_queries WHERE app = ? ORDER BY name').all(appId ?? '')) as Row[];
    return rows.map(view);
  }

  get(id: string): SavedQuery | null {
    const r = this.db.prepare('SELECT * FROM saved_queries WHERE id = ?').get(id) as Row | undefined;
    return r ? view(r) : null;
  }

  save(q: { appId: string | null; name: string; sql: string }, now = Date.now()): SavedQuery {
    const row = this.db
      .prepare(
        `INSERT INTO saved_queries (id, app, name, sql, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (app, name) DO UPDATE SET sql = excluded.sql RETURNING *`,
      )
      .get(randomUUID(), q.appId ?? '', q.name, q.sql, now) as Row;
    return view(row);
  }

  remove(id: string): boolean {
    return this.db.prepare('DELETE FROM saved_queries WHERE id = ?').run(id).changes > 0;
  }
}
