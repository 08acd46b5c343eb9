// Warehouse file storage port: where published Parquet files live. Embedded: a local directory.
// Distributed: S3-compatible storage (scale-out issue) behind the same interface.
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

export interface WarehouseFiles {
  /** Moves a finished local file to `key`, atomically and durably (readers never see a partial file). */
  publish(localFile: string, key: string): Promise<void>;
  /** Every key under `prefix` ('' for all), with its size. */
  list(prefix: string): Promise<Array<{ key: string; bytes: number }>>;
  remove(keys: string[]): Promise<void>;
  /** A local path DuckDB can read for `key`. */
  localPath(key: string): Promise<string>;
  /** Root directory DuckDB may read from (its only allowed directory). */
  readonly readableRoot: string;
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
}
