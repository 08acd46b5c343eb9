// Warehouse file storage port: where published Parquet files live. Embedded: a local directory.
// Distributed: S3-compatible storage (s3-files.ts) behind the same interface, read through a local cache.
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Registry } from 'prom-client';
import type { HeldFiles } from './object-cache.js';
import type { S3Settings } from './s3-files.js';

export type { HeldFiles } from './object-cache.js';

export interface WarehouseFiles {
  /** Moves a finished local file to `key`, atomically and durably (readers never see a partial file). */
  publish(localFile: string, key: string): Promise<void>;
  /** Every key under `prefix` ('' for all), with its size. */
  list(prefix: string): Promise<Array<{ key: string; bytes: number }>>;
  remove(keys: string[]): Promise<void>;
  /** A local path DuckDB can read for `key` (a cached copy may be evicted later: readers that run use acquire). */
  localPath(key: string): Promise<string>;
  /** Local paths DuckDB can read for `files`, kept readable until release() (a query's or a compaction's inputs). */
  acquire(files: ReadonlyArray<{ key: string; bytes: number }>): Promise<HeldFiles>;
  /** Root directory DuckDB may read from (its only allowed directory). */
  readonly readableRoot: string;
  /** Releases connections (S3); files stay. */
  close(): void;
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class LocalWarehouseFiles implements WarehouseFiles {
  constructor(readonly root: string) {}

  get readableRoot(): string {
    return this.root;
  }

  async publish(localFile: string, key: string): Promise<void> {
    const target = join(this.root, key);
    await fsyncPath(localFile);
    await mkdir(dirname(target), { recursive: true });
    await rename(localFile, target);
    await fsyncPath(dirname(target));
  }

  async list(prefix: string): Promise<Array<{ key: string; bytes: number }>> {
    const base = join(this.root, prefix);
    const out: Array<{ key: string; bytes: number }> = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && e.name.endsWith('.parquet')) {
          const s = await stat(p).catch(() => null);
          if (s) out.push({ key: relative(this.root, p).split(sep).join('/'), bytes: s.size });
        }
      }
    };
    await walk(base);
    return out;
  }

  async remove(keys: string[]): Promise<void> {
    for (const k of keys) await rm(join(this.root, k), { force: true });
  }

  async localPath(key: string): Promise<string> {
    return join(this.root, key);
  }

  async acquire(files: ReadonlyArray<{ key: string; bytes: number }>): Promise<HeldFiles> {
    return { paths: files.map((f) => join(this.root, f.key)), release: () => {} };
  }

  close(): void {}
}

export interface WarehouseFilesSettings {
  dataDir: string;
  /** Set: the warehouse lives in S3-compatible storage; null: under <dataDir>/warehouse. */
  s3: S3Settings | null;
  /** Bound of the local read-through cache (<dataDir>/cache/warehouse) of S3 objects. */
  s3CacheBytes: number;
}

/**
 * The warehouse files this configuration names (the S3 SDK is loaded only when S3 is configured). With `registry`,
 * the S3 read cache reports on /metrics (the readers' process passes it; the sink only writes).
 */
export async function openWarehouseFiles(settings: WarehouseFilesSettings, registry?: Registry): Promise<WarehouseFiles> {
  if (!settings.s3) return new LocalWarehouseFiles(join(settings.dataDir, 'warehouse'));
  const { S3WarehouseFiles } = await import('./s3-files.js');
  const files = new S3WarehouseFiles({ s3: settings.s3, cacheDir: join(settings.dataDir, 'cache', 'warehouse'), cacheBytes: settings.s3CacheBytes });
  if (registry) files.registerMetrics(registry);
  return files;
}
