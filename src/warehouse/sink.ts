// Warehouse sink: a bus consumer that writes batches of events as zstd Parquet, Hive-partitioned by app and
// date, and commits its bus position only after the files are published. Exactly once in the warehouse:
// a crash between publish and commit leaves files named with offsets >= the committed one, deleted on restart
// before the batch is replayed; event ids repeated inside a batch are written once.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bus, BusRecord } from '../bus/bus.js';
import type { PressureGauge } from '../bus/ingest-pressure.js';
import { decodeIngestRecord } from '../event/ingest-record.js';
import { EVENT_COLUMNS, serializeStoredEvent } from '../event/stored-event.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import { sqlString, type DuckEngine } from './duckdb.js';
import type { WarehouseFiles } from './files.js';
import { EVENTS_PREFIX, pad, parsePartFile, resolveLiveFiles } from './layout.js';

export const SINK_CONSUMER = 'warehouse-sink';

export interface SinkOptions {
  bus: Bus;
  engine: DuckEngine;
  files: WarehouseFiles;
  stagingDir: string;
  /** Where the batch's transient JSON lines go; memory-backed when possible so they never compete with log fsyncs. */
  scratchDir?: string;
  batchMaxEvents: number;
  flushIntervalMs: number;
  metrics: Metrics;
  log: Logger;
  /** Defers batches during an ingest burst (bounded by the policy's max deferral). */
  defer?: PressureGauge;
}

/** JSON column types for read_json: timestamps travel as epoch ms. */
// props travels as a JSON object serialised into a string; it is read as text and cast, not re-encoded.
const READ_TYPE = { TIMESTAMP: 'BIGINT', JSON: 'VARCHAR' } as Record<string, string>;
const READ_COLUMNS = EVENT_COLUMNS.map((c) => `${c.name}: '${READ_TYPE[c.type] ?? c.type}'`).join(', ');
const SELECT_COLUMNS = EVENT_COLUMNS.map((c) =>
  c.type === 'TIMESTAMP' ? `epoch_ms(${c.name}) AS ${c.name}` : c.type === 'JSON' ? `CAST(${c.name} AS JSON) AS ${c.name}` : c.name,
).join(', ');

export class WarehouseSink {
  private position = 0;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly o: SinkOptions) {}

  /** Recovers (deletes orphan files of an uncommitted batch) and starts consuming. */
  async start(): Promise<void> {
    this.position = Math.max(await this.o.bus.committed(SINK_CONSUMER), this.o.bus.startOffset());
    await rm(this.o.stagingDir, { recursive: true, force: true });
    await mkdir(this.o.stagingDir, { recursive: true });
    if (this.o.scratchDir) await mkdir(this.o.scratchDir, { recursive: true });
    const all = (await this.o.files.list(EVENTS_PREFIX)).map((f) => parsePartFile(f.key, f.bytes)).filter((f) => f !== null);
    const { orphans, superseded } = resolveLiveFiles(all, this.position);
    if (orphans.length || superseded.length) {
      this.o.log.warn({ orphans: orphans.length, superseded: superseded.length }, 'sink recovery: removing files of an unfinished batch or compaction');
      await this.o.files.remove([...orphans, ...superseded].map((f) => f.key));
    }
    this.loop = this.run();
  }

  /** Stops after flushing what was already read. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { bus, batchMaxEvents, flushIntervalMs, metrics, log } = this.o;
    let conn = await this.o.engine.connect();
    // One write in flight while the next batch is read and rebuilt: decoding (JS) overlaps DuckDB's work.
    let writing: Promise<boolean> | null = null;
    let next = this.position;
    while (true) {
      const batch: BusRecord[] = [];
      const lines: string[] = [];
      let firstAt = 0;
      let oldestReceivedAt = 0;
      // Fill until full, or until the oldest record waited flushIntervalMs, or until stopping (then flush what we have).
      // A burst holds the batch as it is, half-filled or not: reading, decoding and writing all compete with ingest.
      while (lines.length < batchMaxEvents) {
        if (await this.deferring(next, batch.length > 0 ? oldestReceivedAt : null)) {
          await this.pause();
          continue;
        }
        const recs = await bus.read(next, 200);
        if (recs.length > 0) {
          if (batch.length === 0) firstAt = Date.now();
          for (const r of recs) {
            batch.push(r);
            const decoded = decodeIngestRecord(r.payload);
            if (batch.length === 1) oldestReceivedAt = decoded.header.receivedAt;
            if (decoded.unbuildable) {
              metrics.sinkUnbuildable.inc(decoded.unbuildable);
              log.error({ offset: r.offset, events: decoded.unbuildable }, 'sink: appended events that no longer validate were skipped');
            }
            for (const ev of decoded.events) lines.push(serializeStoredEvent(ev));
            next = r.offset + 1;
            // A burst that began during this read: stop decoding now (the rest is read again later).
            if (this.holding(oldestReceivedAt)) break;
          }
          // Under steady load reads never come back empty: the flush interval must bound the batch age here too.
          if (Date.now() - firstAt >= flushIntervalMs) break;
          continue;
        }
        if (this.stopping) break;
        const wait = batch.length === 0 ? 1000 : firstAt + flushIntervalMs - Date.now();
        if (wait <= 0) break;
        await Promise.race([bus.waitFor(next, wait), new Promise<void>((r) => (this.wake = r))]);
      }
      // The batch may have become due (full, or old enough) as a burst began: it waits too.
      while (batch.length > 0 && this.holding(oldestReceivedAt)) await this.pause();
      if (writing && !(await writing)) {
        // The previous write failed and nothing of it was committed: start again from the committed position.
        writing = null;
        next = this.position;
        conn.closeSync();
        await new Promise((r) => setTimeout(r, 1000));
        conn = await this.o.engine.connect();
        continue;
      }
      writing = null;
      if (batch.length > 0) {
        writing = this.writeBatch(conn, batch, lines).then(
          () => true,
          (err) => {
            log.error({ err, from: batch[0]!.offset }, 'sink write failed; retrying from the committed position');
            return false;
          },
        );
      }
      if (this.stopping && batch.length === 0) {
        if (writing && !(await writing)) {
          writing = null;
          next = this.position;
          continue;
        }
        if (bus.endOffset() <= this.position) break;
      }
    }
    conn.closeSync();
  }

  /**
   * Whether to wait now because ingest is bursting: judged by the oldest record of the batch being filled, or, with
   * none yet, by the next record on the log. Never while stopping (shutdown flushes what was read).
   */
  private async deferring(next: number, oldestReceivedAt: number | null): Promise<boolean> {
    if (oldestReceivedAt !== null) return this.holding(oldestReceivedAt);
    return !!this.o.defer && !this.stopping && this.o.defer.deferAt(this.o.bus, next);
  }

  /** Whether a batch whose oldest record was received at `oldestReceivedAt` waits for a burst to end. */
  private holding(oldestReceivedAt: number): boolean {
    return !!this.o.defer && !this.stopping && this.o.defer.shouldDefer(oldestReceivedAt);
  }

  /** 100 ms, or less when stopping. */
  private pause(): Promise<void> {
    return Promise.race([new Promise<void>((r) => setTimeout(r, 100)), new Promise<void>((r) => (this.wake = r))]);
  }

  private async writeBatch(conn: Awaited<ReturnType<DuckEngine['connect']>>, batch: BusRecord[], lines: string[]): Promise<void> {
    const { bus, files, metrics, stagingDir } = this.o;
    const started = process.hrtime.bigint();
    const from = batch[0]!.offset;
    const to = batch[batch.length - 1]!.offset + 1;
    const name = `b${pad(from)}-${pad(to)}`;
    if (lines.length === 0) {
      await bus.commit(SINK_CONSUMER, to);
      this.position = to;
      return;
    }
    const jsonl = join(this.o.scratchDir ?? stagingDir, `${name}.jsonl`);
    const outDir = join(stagingDir, name);
    await writeFile(jsonl, lines.length ? `${lines.join('\n')}\n` : '');
    await rm(outDir, { recursive: true, force: true });
    // Rows ordered by app, type, device and time: neighbours alike, so zstd + dictionaries compress well.
    const copied = await conn.runAndReadAll(`COPY (
        SELECT ${SELECT_COLUMNS}, strftime(epoch_ms(ts), '%Y-%m-%d') AS date
        FROM read_json(${sqlString(jsonl)}, format = 'newline_delimited', columns = {${READ_COLUMNS}})
        QUALIFY row_number() OVER (PARTITION BY app_id, event_id ORDER BY received_at) = 1
        ORDER BY app_id, type, device_id, ts
      ) TO ${sqlString(outDir)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (app_id, date),
        FILENAME_PATTERN '${name}-{i}', ROW_GROUP_SIZE 122880)`);
    const rowsWritten = Number(copied.getRows()[0]?.[0] ?? lines.length);
    const produced = await listLocalParquet(outDir);
    for (const rel of produced) await files.publish(join(outDir, rel), `${EVENTS_PREFIX}/${rel}`);
    await rm(outDir, { recursive: true, force: true });
    await rm(jsonl, { force: true });
    await bus.commit(SINK_CONSUMER, to);
    this.position = to;
    metrics.sinkFlushSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    metrics.sinkFlushEvents.observe(lines.length);
    metrics.sinkEventsWritten.inc(rowsWritten);
    if (rowsWritten < lines.length) metrics.sinkDuplicatesSkipped.inc(lines.length - rowsWritten);
  }
}


async function listLocalParquet(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.parquet'))
    .map((e) => join((e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1));
}
