// The embedded state store: one SQLite file per node (<dataDir>/state.db), WAL, synchronous=FULL so a committed
// transaction survives power loss. Each store (anomalies, model snapshots, series, changes, outbox, …) owns its tables
// and registers its migrations here under its own name; the PostgreSQL implementations (scale-out) mirror them.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type SqliteDb = Database.Database;

export function openSqlite(path: string): SqliteDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    store TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (store, version))`);
  return db;
}

/** Applies `steps[i]` (version i+1) for `store` once each, in order, each in its own transaction. */
export function migrate(db: SqliteDb, store: string, steps: readonly string[]): void {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations WHERE store = ?').get(store) as { v: number | null };
  const done = row.v ?? 0;
  for (let i = done; i < steps.length; i++) {
    db.transaction(() => {
      db.exec(steps[i]!);
      db.prepare('INSERT INTO schema_migrations (store, version, applied_at) VALUES (?, ?, ?)').run(store, i + 1, new Date().toISOString());
    })();
  }
}
