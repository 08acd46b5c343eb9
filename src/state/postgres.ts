// The distributed state store: a PostgreSQL connection pool shared by every store of a process, a migration runner
// (schema_migrations per store, as the SQLite one) that is safe when several processes start at once, and a
// transaction helper. Each PostgreSQL store mirrors the tables of its SQLite twin.
import pg from 'pg';

export type PgPool = pg.Pool;
/** A pool or a client inside a transaction: anything that runs a query. */
export type PgQueryable = Pick<pg.Pool | pg.PoolClient, 'query'>;
export type PgClient = pg.PoolClient;

export interface PgPoolOptions {
  /** `postgres://user@host:5432/db`; a `schema` query parameter selects (and creates) the schema, like `schema` below. */
  url: string;
  /** Connections at most (default 10). */
  poolSize?: number;
  /** Server-side limit per statement (default 30 s; 0: none). */
  statementTimeoutMs?: number;
  /** Tables live in this schema (created if missing): tests isolate themselves in a unique one. */
  schema?: string;
  applicationName?: string;
  /** An idle connection failed (server restart): the pool drops it; this is told (default: ignored). */
  onIdleError?: (err: Error) => void;
}

// Lower case only: search_path folds an unquoted name to lower case.
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;

// BIGINT (epoch ms, counts) as a JS number: every value we store is far below 2^53. Per pool, not pg's global parser.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Splits the `schema` parameter (ours, not libpq's) off a connection URL. */
export function schemaOfUrl(url: string): { url: string; schema: string | null } {
  const u = new URL(url);
  const schema = u.searchParams.get('schema');
  u.searchParams.delete('schema');
  return { url: u.toString(), schema };
}

export async function openPgPool(o: PgPoolOptions): Promise<PgPool> {
  const parsed = schemaOfUrl(o.url);
  const schema = o.schema ?? parsed.schema;
  if (schema !== null && !IDENTIFIER.test(schema)) throw new Error(`schema must be a lower-case identifier, got ${JSON.stringify(schema)}`);
  const timeout = o.statementTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString: parsed.url,
    max: o.poolSize ?? 10,
    application_name: o.applicationName ?? 'causality',
    ...(timeout > 0 ? { statement_timeout: timeout } : {}),
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
    types,
  });
  pool.on('error', (err) => o.onIdleError?.(err));
  if (schema) {
    try {
      await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    } catch (e) {
      // Two processes creating it at once: the loser sees a unique violation; the schema exists either way.
      if ((e as { code?: string }).code !== '23505') {
        await pool.end();
        throw e;
      }
    }
  }
  return pool;
}

/** Runs `fn` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
export async function withTransaction<T>(pool: PgPool, fn: (client: PgClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    client.release();
    return out;
  } catch (e) {
    // A connection whose rollback fails is not given back to the pool.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (rollbackError: Error) => client.release(rollbackError),
    );
    throw e;
  }
}

// One lock for every store's migrations (per database): steps are short and run once.
const MIGRATION_LOCK = 0x63617573; // "caus"

/**
 * Applies `steps[i]` (version i+1) for `store` once each, in order, in one transaction holding an advisory lock,
 * so two processes starting at once apply each step exactly once (the second waits, then finds them done).
 */
export async function migratePg(pool: PgPool, store: string, steps: readonly string[]): Promise<void> {
  await withTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      store TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (store, version))`);
    const { rows } = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations WHERE store = $1', [store]);
    for (let i = rows[0]?.v ?? 0; i < steps.length; i++) {
      await c.query(steps[i]!);
      await c.query('INSERT INTO schema_migrations (store, version, applied_at) VALUES ($1, $2, $3)', [store, i + 1, new Date().toISOString()]);
    }
  });
}

/** Builds a parameter list for dynamic SQL: `p(value)` adds it and returns its placeholder (`$n`). */
export function params(): { args: unknown[]; p: (v: unknown) => string } {
  const args: unknown[] = [];
  return { args, p: (v) => (args.push(v), `$${args.length}`) };
}
