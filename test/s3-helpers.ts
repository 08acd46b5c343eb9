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
