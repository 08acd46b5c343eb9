// A local S3-compatible server (s3rver, through scripts/s3-dev-server.mjs) started in-process for a test file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3DevServer } from '../scripts/s3-dev-server.mjs';

export const TEST_BUCKET = 'causality-test';

export interface TestS3 {
  server: S3DevServer;
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** s3rver on a free port with a temp directory and one bucket; tests isolate themselves by key prefix. */
export async function startTestS3(): Promise<TestS3> {
  // The script lives outside the compiled tree (dist/test → ../../scripts).
  const mod = (await import(new URL('../../scripts/s3-dev-server.mjs', import.meta.url).href)) as typeof import('../scripts/s3-dev-server.mjs');
  const dir = await mkdtemp(join(tmpdir(), 'causality-s3-'));
  const server = await mod.startS3DevServer({ port: 0, directory: dir, buckets: [TEST_BUCKET] });
  return {
    server,
    endpoint: server.endpoint,
    ...mod.S3RVER_CREDENTIALS,
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The columns of ops/trino/events.sql's CREATE TABLE, in order, with their Trino types, and its partition keys. */
export async function readTrinoDdl(): Promise<{ columns: Array<{ name: string; type: string }>; partitionedBy: string[]; externalLocation: string }> {
  const { readFile } = await import('node:fs/promises');
  const sql = await readFile(new URL('../../ops/trino/events.sql', import.meta.url), 'utf8');
  const code = sql.replace(/--.*$/gm, '');
  const table = /CREATE TABLE IF NOT EXISTS hive\.causality\.events \(([\s\S]*?)\n\)\s*WITH \(([\s\S]*?)\n\);/.exec(code);
  if (!table) throw new Error('no CREATE TABLE hive.causality.events (…) WITH (…) in ops/trino/events.sql');
  const columns = table[1]!
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [name, type] = l.split(/\s+/);
      return { name: name!.replaceAll('"', ''), type: type! };
    });
  const partitionedBy = [...(/partitioned_by = ARRAY\[([^\]]*)\]/.exec(table[2]!)?.[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1]!);
  const externalLocation = /external_location = '([^']+)'/.exec(table[2]!)?.[1] ?? '';
  return { columns, partitionedBy, externalLocation };
}
