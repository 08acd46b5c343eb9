// The embedded query engine: one in-process DuckDB that never reaches the network and may read only the
// warehouse directory. Configuration is locked after setup so user SQL cannot change it.
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';

export interface DuckEngineOptions {
  /** Directories DuckDB may read and write (the warehouse and its staging area). */
  allowedDirectories: string[];
  threads?: number;
  memoryLimit?: string;
}

export class DuckEngine {
  private constructor(private readonly instance: DuckDBInstance) {}

  static async create(opts: DuckEngineOptions): Promise<DuckEngine> {
    const instance = await DuckDBInstance.create(':memory:', {
      threads: String(opts.threads ?? 2),
      memory_limit: opts.memoryLimit ?? '4GB',
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
    const setup = await instance.connect();
    const dirs = opts.allowedDirectories.map((d) => `'${d.replaceAll("'", "''")}'`).join(', ');
    for (const sql of [
      `SET allowed_directories = [${dirs}]`,
      `SET enable_external_access = false`,
      `SET parquet_metadata_cache = true`,
      `SET preserve_insertion_order = false`,
      `SET lock_configuration = true`,
    ]) {
      await setup.run(sql);
    }
    setup.closeSync();
    return new DuckEngine(instance);
  }

  connect(): Promise<DuckDBConnection> {
    return this.instance.connect();
  }

  close(): void {
    this.instance.closeSync();
  }
}

export const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
