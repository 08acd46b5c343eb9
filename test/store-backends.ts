// The state-store backends every contract suite runs against: SQLite (a fresh file per database) and PostgreSQL on
// the machine's server (a fresh schema per database, dropped afterwards). TEST_DATABASE_URL overrides the server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openPgPool } from '../src/state/postgres.js';
import { openStateStores, type StateStoreOptions, type StateStores } from '../src/state/stores.js';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

export type StoreOptions = Omit<StateStoreOptions, 'databaseUrl' | 'statePath' | 'schema'>;

/** One empty database: every `open` is a new connection (pool) to the same data, as another process would have. */
export interface TestDatabase {
  open(o?: StoreOptions): Promise<StateStores>;
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  fresh(): Promise<TestDatabase>;
  /** Closes what `open` opened and removes every database made. */
  cleanup(): Promise<void>;
}

function tracked(open: (o: StoreOptions) => Promise<StateStores>, opened: StateStores[]): TestDatabase {
  return {
    async open(o = {}) {
      const s = await open(o);
      opened.push(s);
      return s;
    },
  };
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'causality-store-'));
  const opened: StateStores[] = [];
  let n = 0;
  return {
    name: 'sqlite',
    async fresh() {
      const statePath = join(dir, `state-${++n}.db`);
      return tracked((o) => openStateStores({ ...o, databaseUrl: null, statePath }), opened);
    },
    async cleanup() {
      await Promise.allSettled(opened.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  const schemas: string[] = [];
  const opened: StateStores[] = [];
  return {
    name: 'postgres',
    async fresh() {
      const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
      schemas.push(schema);
      return tracked((o) => openStateStores({ poolSize: 4, ...o, databaseUrl: PG_URL, statePath: '', schema }), opened);
    },
    async cleanup() {
      await Promise.allSettled(opened.map((s) => s.close()));
      if (!schemas.length) return;
      const admin = await openPgPool({ url: PG_URL, poolSize: 1 });
      try {
        for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Both backends, fresh for a suite: `for (const b of backends()) describe(b.name, …)` and `after(b.cleanup)`. */
export function backends(): Backend[] {
  return [sqliteBackend(), postgresBackend()];
}
