// The warehouse as readers see it: the live Parquet files (superseded and orphaned ones excluded), the
// `events` relation over them, and compaction of small files.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { EVENT_COLUMNS } from '../event/stored-event.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import { sqlString, type DuckEngine } from './duckdb.js';
import type { WarehouseFiles } from './files.js';
import { EVENTS_PREFIX, pad, parsePartFile, resolveLiveFiles, type PartFile } from './layout.js';

export interface FileFilter {
  appId?: string | null;
  /** Inclusive UTC dates, YYYY-MM-DD. */
  fromDate?: string;
  toDate?: string;
}

const PARTITION = /app_id=([^/]+)\/date=(\d{4}-\d{2}-\d{2})$/;
const COLUMN_LIST = EVENT_COLUMNS.map((c) => c.name).join(', ');
const EMPTY_EVENTS = `SELECT ${EVENT_COLUMNS.map((c) => `NULL::${c.type} AS ${c.name}`).join(', ')} WHERE false`;
// Superseded files stay readable this long after a compaction, so queries already planned on them finish.
const SUPERSEDED_GRACE_MS = 60_000;

// Listings are reused while nothing changed here, and for at most this long (other processes may add files).
const LISTING_TTL_MS = 1_000;

export class Warehouse {
  private readonly supersededSince = new Map<string, number>();
  private listing: { at: number; committed: number; generation: number; files: PartFile[] } | null = null;
  private generation = 0;
  private compacting: Promise<number> | null = null;

  constructor(
    private readonly engine: DuckEngine,
    private readonly files: WarehouseFiles,
    /** The sink's committed offset; files at or past it belong to an unfinished batch. */
    private readonly committedOffset: () => number,
    private readonly stagingDir: string,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async partFiles(): Promise<PartFile[]> {
    const committed = this.committedOffset();
    const l = this.listing;
    if (l && l.committed === committed && l.generation === this.generation && Date.now() - l.at < LISTING_TTL_MS) return l.files;
    const generation = this.generation;
    const listed = await this.files.list(EVENTS_PREFIX);
    const files = listed.map((f) => parsePartFile(f.key, f.bytes)).filter((f): f is PartFile => f !== null);
    this.listing = { at: Date.now(), committed, generation, files };
    return files;
  }

  async liveFiles(filter: FileFilter = {}): Promise<PartFile[]> {
    const { live } = resolveLiveFiles(await this.partFiles(), this.committedOffset());
    return live.filter((f) => {
      const m = PARTITION.exec(f.partition);
      if (!m) return false;
      if (filter.appId && decodeURIComponent(m[1]!) !== filter.appId) return false;
      if (filter.fromDate && m[2]! < filter.fromDate) return false;
      if (filter.toDate && m[2]! > filter.toDate) return false;
      return true;
    });
  }

  /**
   * SQL for the events relation over the given files, columns in documented order. Its files stay readable until
   * release() (with S3 they are fetched into the local cache and pinned there while the query runs).
   */
  async openEventsRelation(filter: FileFilter = {}): Promise<{ sql: string; release(): void }> {
    const files = await this.liveFiles(filter);
    if (files.length === 0) return { sql: EMPTY_EVENTS, release: () => {} };
    const held = await this.files.acquire(files);
    const list = held.paths.map(sqlString).join(', ');
    const where = filter.appId ? ` WHERE app_id = ${sqlString(filter.appId)}` : '';
    return {
      sql: `SELECT ${COLUMN_LIST} FROM read_parquet([${list}], hive_partitioning = true, hive_types = {'app_id': VARCHAR, 'date': DATE})${where}`,
      release: held.release,
    };
  }

  /** Merges partitions that have many small files into one file each; returns partitions compacted. One pass at a time. */
  compact(minFiles: number, smallBytes = 64 * 1024 * 1024): Promise<number> {
    this.compacting ??= this.compactOnce(minFiles, smallBytes).finally(() => {
      this.compacting = null;
      this.generation++;
    });
    return this.compacting;
  }

  private async compactOnce(minFiles: number, smallBytes: number): Promise<number> {
    this.generation++; // list afresh: compaction must see every file
    const all = await this.partFiles();
    const committed = this.committedOffset();
    const { live, superseded } = resolveLiveFiles(all, committed);
    const now = Date.now();
    const expired: string[] = [];
    for (const f of superseded) {
      const since = this.supersededSince.get(f.key) ?? now;
      this.supersededSince.set(f.key, since);
      if (now - since >= SUPERSEDED_GRACE_MS) expired.push(f.key);
    }
    if (expired.length) {
      await this.files.remove(expired);
      for (const k of expired) this.supersededSince.delete(k);
    }
    const byPartition = new Map<string, PartFile[]>();
    for (const f of live) {
      if (f.bytes >= smallBytes || f.to > committed) continue;
      const list = byPartition.get(f.partition) ?? [];
      list.push(f);
      byPartition.set(f.partition, list);
    }
    // A compacted file supersedes everything inside its offset range, so big files in that range join the merge.
    for (const [partition, small] of byPartition) {
      const lo = Math.min(...small.map((f) => f.from));
      const hi = Math.max(...small.map((f) => f.to));
      const inRange = live.filter((f) => f.partition === partition && f.from >= lo && f.to <= hi);
      byPartition.set(partition, small.length >= minFiles ? inRange : small);
    }
    let compacted = 0;
    let conn: DuckDBConnection | null = null;
    try {
      for (const [partition, list] of byPartition) {
        if (list.length < minFiles) continue;
        conn ??= await this.engine.connect();
        const from = Math.min(...list.map((f) => f.from));
        const to = Math.max(...list.map((f) => f.to));
        const name = `c${pad(from)}-${pad(to)}.parquet`;
        await mkdir(this.stagingDir, { recursive: true });
        const tmp = join(this.stagingDir, `compact-${process.pid}-${name}`);
        const inputs = await this.files.acquire(list);
        try {
          await conn.run(`COPY (
              SELECT * FROM read_parquet([${inputs.paths.map(sqlString).join(', ')}], hive_partitioning = false)
              QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received_at) = 1
              ORDER BY type, device_id, ts
            ) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`);
        } finally {
          inputs.release();
        }
        await this.files.publish(tmp, `${partition}/${name}`);
        this.generation++;
        for (const f of list) this.supersededSince.set(f.key, Date.now());
        await rm(tmp, { force: true });
        compacted++;
        this.metrics.compactions.inc();
        this.log.debug({ partition, files: list.length, from, to }, 'compacted');
      }
    } finally {
      conn?.closeSync();
    }
    return compacted;
  }
}
