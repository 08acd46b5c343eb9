// Every state store of a process, opened on the configured backend: the embedded SQLite file (one connection shared
// by the stores) or PostgreSQL (one pool shared by the stores, DATABASE_URL). Callers see the ports only.
import type { Anomaly } from '../detect/anomaly.js';
import { SqliteAnomalyStore, SqliteSnapshotStore, type AnomalyStore, type SnapshotStore } from '../detect/anomaly-store.js';
import { PgAnomalyStore, PgSnapshotStore } from '../detect/pg-anomaly-store.js';
import { SqliteOutboxStore, type EnqueueResult, type OutboxStore } from '../react/outbox-store.js';
import { PgOutboxStore } from '../react/pg-outbox-store.js';
import { SqliteCausalStore, type CausalStore } from '../causal/store.js';
import { PgCausalStore } from '../causal/pg-store.js';
import { PgSavedQueryStore, SqliteSavedQueryStore, type SavedQueryStore } from '../query/saved-queries.js';
import { openPgPool } from './postgres.js';
import { openSqlite } from './sqlite.js';

export interface StateStores {
  backend: 'sqlite' | 'postgres';
  anomalies: AnomalyStore;
  snapshots: SnapshotStore;
  outbox: OutboxStore;
  causal: CausalStore;
  savedQueries: SavedQueryStore;
  /**
   * An anomaly store whose inserts write the webhook deliveries of the new anomalies in the SAME transaction (an
   * anomaly is never stored without them). `onEnqueued` sees what was written, before the commit; if it throws,
   * nothing is stored.
   */
  anomaliesWithOutbox(onEnqueued?: (r: EnqueueResult) => void): AnomalyStore;
  close(): Promise<void>;
}

export interface StateStoreOptions {
  /** PostgreSQL when set (`postgres://…`, optionally `?schema=name`); else the SQLite file at `statePath`. */
  databaseUrl: string | null;
  statePath: string;
  /** SQLite durability of this connection: FULL (default) or NORMAL (a writer whose rows a replay recreates). */
  sqliteSynchronous?: 'FULL' | 'NORMAL';
  /** PostgreSQL connections at most (default 10). */
  poolSize?: number;
  statementTimeoutMs?: number;
  /** PostgreSQL schema (tests isolate in a unique one); overrides the URL's `schema`. */
  schema?: string;
  /** Webhook alert grouping window, given by the process that owns the configuration (others read the stored one). */
  groupWindowMs?: number;
  now?: () => number;
  /** A pooled PostgreSQL connection failed while idle (it is replaced). */
  onIdleError?: (err: Error) => void;
}

export async function openStateStores(o: StateStoreOptions): Promise<StateStores> {
  return o.databaseUrl ? openPostgresStores(o.databaseUrl, o) : openSqliteStores(o);
}

function openSqliteStores(o: StateStoreOptions): StateStores {
  const db = openSqlite(o.statePath);
  if (o.sqliteSynchronous === 'NORMAL') db.pragma('synchronous = NORMAL');
  const now = o.now ?? Date.now;
  const outbox = new SqliteOutboxStore(db, { groupWindowMs: o.groupWindowMs, now });
  return {
    backend: 'sqlite',
    anomalies: new SqliteAnomalyStore(db, now),
    snapshots: new SqliteSnapshotStore(db, now),
    outbox,
    causal: new SqliteCausalStore(db),
    savedQueries: new SqliteSavedQueryStore(db),
    anomaliesWithOutbox: (onEnqueued) =>
      new SqliteAnomalyStore(db, now, (fresh: readonly Anomaly[], at: number) => {
        const r = outbox.enqueueWithin(fresh, at);
        onEnqueued?.(r);
      }),
    async close() {
      db.close();
    },
  };
}

async function openPostgresStores(url: string, o: StateStoreOptions): Promise<StateStores> {
  const pool = await openPgPool({ url, poolSize: o.poolSize, statementTimeoutMs: o.statementTimeoutMs, schema: o.schema, onIdleError: o.onIdleError });
  try {
    const now = o.now ?? Date.now;
    const anomalies = await PgAnomalyStore.open(pool, { now });
    const outbox = await PgOutboxStore.open(pool, { groupWindowMs: o.groupWindowMs, now });
    const snapshots = await PgSnapshotStore.open(pool, { now });
    const causal = await PgCausalStore.open(pool);
    const savedQueries = await PgSavedQueryStore.open(pool);
    return {
      backend: 'postgres',
      anomalies,
      snapshots,
      outbox,
      causal,
      savedQueries,
      anomaliesWithOutbox: (onEnqueued) =>
        anomalies.withHook(async (client, fresh, at) => {
          const r = await outbox.enqueueWithin(client, fresh, at);
          onEnqueued?.(r);
        }),
      async close() {
        await pool.end();
      },
    };
  } catch (e) {
    await pool.end();
    throw e;
  }
}
