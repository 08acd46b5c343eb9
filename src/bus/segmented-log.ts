// Embedded Bus: an append-only log split into segment files, with group-committed fsync.
// "Acked means durable": appendDurably resolves only after the bytes were written and datasync'd,
// and readers (endOffset/read/waitFor) only ever see records that are already on disk.
//
// Layout:
//   <dir>/segments/<20-digit base offset>.log   frames: u32be payload length, u32be CRC32(payload), payload
//   <dir>/consumers/<name>.offset               committed next offset as decimal text

import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { crc32 } from 'node:zlib';
import { payloadLength, payloadParts, type Bus, type BusRecord, type Payload } from './bus.js';
import { SerialPerKey } from '../util/serial-per-key.js';

export interface SegmentedLogOptions {
  dir: string; // created if missing
  segmentBytes?: number; // roll to a new segment file past this size; default 64 MiB
  retentionBytes?: number; // default Infinity; total size of sealed segments to keep
  retentionMs?: number; // default 7 days; a sealed segment whose newest record is older is removable
  onFsync?: (seconds: number, records: number) => void; // metrics hook, called after each group commit
}

const FRAME_HEADER_BYTES = 8;
const MAX_PAYLOAD_BYTES = 0xffff_ffff; // the length prefix is a u32
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** Chunk size for scans that must skip records (recovery, random seeks). */
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;
/** Smallest read-ahead when resuming from a cached cursor (see resumeChunkBytes). */
const MIN_RESUME_CHUNK_BYTES = 4 * 1024;
/** Soft cap on one group commit's buffer, so a burst of appends does not become one giant allocation. */
const MAX_FLUSH_BYTES = 32 * 1024 * 1024;
const CURSOR_CACHE_SIZE = 64;
const READ_HANDLE_CACHE_SIZE = 16;
const SCAN_BATCH_RECORDS = 10_000;
/** setTimeout overflows (fires after 1 ms) beyond this; longer waits just have no timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const SEGMENT_FILE_NAME = /^(\d{20})\.log$/;
const CONSUMER_NAME = /^[a-zA-Z0-9._-]{1,64}$/;
const OFFSET_FILE_SUFFIX = '.offset';
const TMP_SUFFIX = '.tmp';

interface Segment {
  base: number;
  path: string;
  /** Durable size in bytes. Final once sealed; for the active segment, grows after each fsync. */
  bytes: number;
}

interface PendingAppend {
  payloads: Payload[];
  frameBytes: number;
  resolve: (firstOffset: number) => void;
  reject: (err: Error) => void;
}

interface Waiter {
  offset: number;
  resolve: () => void;
  timer: NodeJS.Timeout | undefined;
}

/** A shared read-only handle on one segment; closed once retired and no read is using it. */
interface ReadHandle {
  handle: Promise<FileHandle>;
  users: number;
  retired: boolean;
  closed: Promise<void> | undefined;
}

/** Where record `offset` starts inside segment `segmentBase`. */
interface Cursor {
  segmentBase: number;
  position: number;
}

type WalkEnd = 'end' | 'stopped' | 'torn';

/** Visits one complete frame; `payloadAt` indexes into `chunk`. Return false to stop the walk. */
type FrameVisitor = (chunk: Buffer, payloadAt: number, payloadLength: number, framePosition: number) => boolean;

export class SegmentedLog implements Bus {
  /** Bytes cut off the last segment on open because of a torn/corrupt tail (0 after a clean shutdown). */
  readonly recoveredTruncatedBytes: number;

  private readonly segmentsDir: string;
  private readonly consumersDir: string;
  private readonly segmentBytes: number;
  private readonly retentionBytes: number;
  private readonly retentionMs: number;
  private readonly onFsync: ((seconds: number, records: number) => void) | undefined;

  /** Sorted by base; never empty; the last one is the active (appended-to) segment. */
  private readonly segments: Segment[];
  private activeHandle: FileHandle;
  private nextOffset: number;

  private pending: PendingAppend[] = [];
  private flushing = false;
  private flushDone: Promise<void> = Promise.resolve();
  /** Set once a write/fsync failed: from then on nothing more is acknowledged. */
  private failure: Error | undefined;
  private closed = false;
  /** Set once close() released the files; retention must not touch anything after that. */
  private released = false;
  private closing: Promise<void> | undefined;

  private readonly waiters = new Set<Waiter>();
  private readonly cursors = new Map<number, Cursor>();
  private readonly readHandles = new Map<number, ReadHandle>();
  private readonly committedOffsets: Map<string, number>;
  private readonly commitChains = new SerialPerKey();
  private retentionChain: Promise<unknown> = Promise.resolve();

  private constructor(
    opts: Required<Omit<SegmentedLogOptions, 'onFsync'>> & Pick<SegmentedLogOptions, 'onFsync'>,
    segments: Segment[],
    activeHandle: FileHandle,
    nextOffset: number,
    recoveredTruncatedBytes: number,
    committedOffsets: Map<string, number>,
  ) {
    this.segmentsDir = join(opts.dir, 'segments');
    this.consumersDir = join(opts.dir, 'consumers');
    this.segmentBytes = opts.segmentBytes;
    this.retentionBytes = opts.retentionBytes;
    this.retentionMs = opts.retentionMs;
    this.onFsync = opts.onFsync;
    this.segments = segments;
    this.activeHandle = activeHandle;
    this.nextOffset = nextOffset;
    this.recoveredTruncatedBytes = recoveredTruncatedBytes;
    this.committedOffsets = committedOffsets;
  }

  static async open(opts: SegmentedLogOptions): Promise<SegmentedLog> {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const retentionBytes = opts.retentionBytes ?? Infinity;
    const retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) {
      throw new RangeError(`segmentBytes must be a positive integer, got ${segmentBytes}`);
    }
    if (!(retentionBytes >= 0)) throw new RangeError(`retentionBytes must be >= 0, got ${retentionBytes}`);
    if (!(retentionMs >= 0)) throw new RangeError(`retentionMs must be >= 0, got ${retentionMs}`);

    const dir = opts.dir;
    const segmentsDir = join(dir, 'segments');
    const consumersDir = join(dir, 'consumers');
    const createdRoot = await mkdir(dir, { recursive: true });
    const createdSegments = await mkdir(segmentsDir, { recursive: true });
    const createdConsumers = await mkdir(consumersDir, { recursive: true });
    // New directory entries are only durable once their parent directory is fsynced.
    if (createdSegments !== undefined || createdConsumers !== undefined) await fsyncDir(dir);
    if (createdRoot !== undefined) await fsyncDir(dirname(resolvePath(dir))).catch(() => undefined);

    const bases = await listSegmentBases(segmentsDir);
    const segments: Segment[] = [];
    let activeHandle: FileHandle;
    let nextOffset: number;
    let truncatedBytes = 0;

    if (bases.length === 0) {
      const path = segmentPath(segmentsDir, 0);
      activeHandle = await open(path, 'wx');
      await fsyncDir(segmentsDir);
      segments.push({ base: 0, path, bytes: 0 });
      nextOffset = 0;
    } else {
      // Sealed segments are trusted (they were fsynced before the roll); only sizes are needed.
      for (const base of bases.slice(0, -1)) {
        const path = segmentPath(segmentsDir, base);
        segments.push({ base, path, bytes: (await stat(path)).size });
      }
      const lastBase = bases[bases.length - 1];
      const lastPath = segmentPath(segmentsDir, lastBase);
      activeHandle = await open(lastPath, 'r+');
      try {
        const recovered = await recoverTail(activeHandle);
        truncatedBytes = recovered.truncatedBytes;
        segments.push({ base: lastBase, path: lastPath, bytes: recovered.validBytes });
        nextOffset = lastBase + recovered.records;
      } catch (err) {
        await activeHandle.close().catch(() => undefined);
        throw err;
      }
    }

    let committedOffsets: Map<string, number>;
    try {
      committedOffsets = await loadCommittedOffsets(consumersDir);
    } catch (err) {
      await activeHandle.close().catch(() => undefined);
      throw err;
    }

    return new SegmentedLog(
      { dir, segmentBytes, retentionBytes, retentionMs, onFsync: opts.onFsync },
      segments,
      activeHandle,
      nextOffset,
      truncatedBytes,
      committedOffsets,
    );
  }

  endOffset(): number {
    return this.nextOffset;
  }

  startOffset(): number {
    return this.segments[0].base;
  }

  appendDurably(payloads: Payload[]): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('SegmentedLog is closed'));
    if (payloads.length === 0) return Promise.resolve(this.nextOffset);
    let frameBytes = 0;
    for (const payload of payloads) {
      if (!(payload instanceof Uint8Array) && !(Array.isArray(payload) && payload.every((part) => part instanceof Uint8Array))) {
        return Promise.reject(new TypeError('appendDurably payloads must be Buffers (or arrays of Buffers)'));
      }
      const length = payloadLength(payload as Payload);
      if (length > MAX_PAYLOAD_BYTES) {
        return Promise.reject(new RangeError(`payload of ${length} bytes exceeds ${MAX_PAYLOAD_BYTES}`));
      }
      frameBytes += FRAME_HEADER_BYTES + length;
    }
    // Copy the array (not the bytes) so a caller reusing its array cannot change what gets written.
    // Payload bytes are written at flush time: callers must not mutate them until the promise settles.
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ payloads: payloads.slice(), frameBytes, resolve, reject });
      this.startFlushing();
    });
  }

  async read(fromOffset: number, maxRecords: number): Promise<BusRecord[]> {
    if (!Number.isSafeInteger(fromOffset) || !Number.isSafeInteger(maxRecords)) {
      throw new RangeError(`read(${fromOffset}, ${maxRecords}): offsets must be integers`);
    }
    if (this.closed) throw new Error('SegmentedLog is closed');
    const records: BusRecord[] = [];
    if (maxRecords <= 0) return records;
    // Clamp first, then count: a consumer left behind by retention still gets a full chunk from the start
    // (rather than an empty result it could mistake for "caught up").
    let offset = Math.max(fromOffset, this.startOffset());
    // Snapshot of the durable end: records appended while this read runs are left for the next read.
    const end = Math.min(offset + maxRecords, this.nextOffset);
    while (offset < end) {
      const index = this.segmentIndexOf(offset);
      if (index < 0) {
        // Retention removed the segment since we started; continue from what is still retained.
        offset = this.startOffset();
        continue;
      }
      const segment = this.segments[index];
      const following = this.segments[index + 1];
      const segmentEnd = following ? Math.min(end, following.base) : end;
      try {
        offset = await this.readFromSegment(segment, offset, segmentEnd, records);
      } catch (err) {
        if (isNotFound(err) && !this.segments.includes(segment)) {
          offset = Math.max(offset, this.startOffset());
          continue;
        }
        throw err;
      }
    }
    return records;
  }

  async scan(fromOffset: number, onRecord: (r: BusRecord) => void): Promise<void> {
    // The end is fixed at the start so a scan terminates even while appends keep arriving.
    const stopAt = this.nextOffset;
    let offset = Math.max(fromOffset, this.startOffset());
    while (offset < stopAt) {
      const batch = await this.read(offset, Math.min(SCAN_BATCH_RECORDS, stopAt - offset));
      if (batch.length === 0) break;
      for (const record of batch) onRecord(record);
      offset = batch[batch.length - 1].offset + 1;
    }
  }

  waitFor(offset: number, timeoutMs: number): Promise<void> {
    if (this.nextOffset > offset || this.closed || !(timeoutMs > 0)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter: Waiter = { offset, resolve, timer: undefined };
      if (timeoutMs <= MAX_TIMER_MS) {
        waiter.timer = setTimeout(() => {
          this.waiters.delete(waiter);
          resolve();
        }, timeoutMs);
      }
      // A plain Set instead of an EventEmitter: no listener limits, and each waiter is removed exactly once.
      this.waiters.add(waiter);
    });
  }

  async committed(consumer: string): Promise<number> {
    assertConsumerName(consumer);
    const cached = this.committedOffsets.get(consumer);
    if (cached !== undefined) return cached;
    const stored = await readOffsetFile(join(this.consumersDir, consumer + OFFSET_FILE_SUFFIX));
    if (stored === undefined) return 0;
    this.committedOffsets.set(consumer, stored);
    return stored;
  }

  commit(consumer: string, nextOffset: number): Promise<void> {
    assertConsumerName(consumer);
    if (!Number.isSafeInteger(nextOffset) || nextOffset < 0) {
      return Promise.reject(new RangeError(`commit offset must be a non-negative integer, got ${nextOffset}`));
    }
    if (this.closed) return Promise.reject(new Error('SegmentedLog is closed'));
    // Commits of one consumer are serialized: they share the .tmp file, and the last call must win.
    return this.commitChains.run(consumer, () => this.writeCommittedOffset(consumer, nextOffset));
  }

  /**
   * Applies retention now; returns number of segments removed. Never removes a segment containing an
   * offset >= the minimum committed offset across all consumers that ever committed. Never removes the
   * active segment.
   */
  applyRetention(): Promise<number> {
    const run = this.retentionChain.then(() => this.removeExpiredSegments());
    this.retentionChain = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- append path ------------------------------------------------------------------------------

  private startFlushing(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.flushDone = this.flushLoop();
  }

  /** Single writer: drains the queue one group commit at a time. Never rejects. */
  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) await this.flushGroup();
    } finally {
      // Reset synchronously after the last emptiness check, so an append arriving later starts a new loop.
      this.flushing = false;
    }
  }

  private async flushGroup(): Promise<void> {
    const group = this.takeGroup();
    if (this.failure) {
      for (const append of group) append.reject(this.failure);
      return;
    }
    let groupBytes = 0;
    let recordCount = 0;
    for (const append of group) {
      groupBytes += append.frameBytes;
      recordCount += append.payloads.length;
    }

    let fsyncSeconds: number;
    try {
      if (this.activeSegment().bytes >= this.segmentBytes) await this.rollSegment();
      await writeFramesFully(this.activeHandle, frameBuffers(group, recordCount), this.activeSegment().bytes);
      // onFsync reports the datasync alone: the write only reaches the page cache, the sync is the durability cost.
      const fsyncStarted = process.hrtime.bigint();
      await this.activeHandle.datasync();
      fsyncSeconds = Number(process.hrtime.bigint() - fsyncStarted) / 1e9;
    } catch (err) {
      // The bytes may or may not be on disk: acknowledge nothing, now or later.
      this.failure = new Error(`SegmentedLog write failed; the log is unusable until reopened: ${describe(err)}`, {
        cause: err,
      });
      for (const append of group) append.reject(this.failure);
      return;
    }

    let firstOffset = this.nextOffset;
    for (const append of group) {
      append.resolve(firstOffset);
      firstOffset += append.payloads.length;
    }
    this.activeSegment().bytes += groupBytes;
    this.nextOffset = firstOffset;
    this.wakeWaiters();
    if (this.onFsync) {
      try {
        this.onFsync(fsyncSeconds, recordCount);
      } catch {
        // A broken metrics hook must not affect durability.
      }
    }
  }

  /** Takes queued appends for one commit: all of them, unless that would exceed MAX_FLUSH_BYTES. */
  private takeGroup(): PendingAppend[] {
    let bytes = 0;
    let count = 0;
    while (count < this.pending.length) {
      bytes += this.pending[count].frameBytes;
      if (count > 0 && bytes > MAX_FLUSH_BYTES) break;
      count++;
    }
    return this.pending.splice(0, count);
  }

  private async rollSegment(): Promise<void> {
    const base = this.nextOffset;
    const path = segmentPath(this.segmentsDir, base);
    const handle = await open(path, 'wx');
    try {
      await fsyncDir(this.segmentsDir);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    const sealedHandle = this.activeHandle;
    this.activeHandle = handle;
    this.segments.push({ base, path, bytes: 0 });
    // The sealed segment's data was fsynced by its last commit; a failing close cannot lose anything.
    await sealedHandle.close().catch(() => undefined);
    void this.applyRetention().catch(() => undefined);
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters) {
      if (this.nextOffset > waiter.offset) {
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve();
      }
    }
  }

  private activeSegment(): Segment {
    return this.segments[this.segments.length - 1];
  }

  // ---- read path --------------------------------------------------------------------------------

  /** Index of the segment holding `offset`, or -1 when it is below the retained range. */
  private segmentIndexOf(offset: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    if (offset < this.segments[0].base) return -1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.segments[mid].base <= offset) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  /** Appends records [target, segmentEnd) of one segment to `out`; returns segmentEnd. */
  private async readFromSegment(segment: Segment, target: number, segmentEnd: number, out: BusRecord[]): Promise<number> {
    const cursor = this.nearestCursor(segment.base, target);
    const lease = await this.acquireReadHandle(segment);
    try {
      let offset = cursor.offset;
      let position = cursor.position;
      let corruptAt = -1;
      const visit: FrameVisitor = (chunk, payloadAt, payloadLength, framePosition) => {
        if (offset >= target) {
          const payload = chunk.subarray(payloadAt, payloadAt + payloadLength);
          if (crc32(payload) !== chunk.readUInt32BE(payloadAt - 4)) {
            corruptAt = framePosition;
            return false;
          }
          if (offset === target && cursor.offset !== target) this.rememberCursor(target, segment.base, framePosition);
          // Copy: the chunk is large and shared by many records; returned payloads must own their bytes.
          out.push({ offset, payload: Buffer.from(payload) });
        }
        offset++;
        position = framePosition + FRAME_HEADER_BYTES + payloadLength;
        return offset < segmentEnd;
      };
      const firstChunk =
        cursor.offset === target ? this.resumeChunkBytes(segment, segmentEnd - target) : SCAN_CHUNK_BYTES;
      await walkFrames(lease.file, cursor.position, segment.bytes, firstChunk, visit);
      if (corruptAt >= 0) {
        throw new Error(`corrupt record (CRC mismatch) at offset ${offset}, byte ${corruptAt} of ${segment.path}`);
      }
      if (offset < segmentEnd) {
        throw new Error(`segment ${segment.path} holds fewer records than expected (${offset} < ${segmentEnd})`);
      }
      this.rememberCursor(offset, segment.base, position);
      return offset;
    } finally {
      this.releaseReadHandle(lease.entry);
    }
  }

  /**
   * Read-ahead when resuming exactly at a cursor: about the bytes the wanted records should take
   * (from the segment's average frame size), so tailing reads stay small and chunked reads rarely
   * need a second round trip. walkFrames grows the chunk if the estimate falls short.
   */
  private resumeChunkBytes(segment: Segment, records: number): number {
    const segmentRecords = (this.segments[this.segments.indexOf(segment) + 1]?.base ?? this.nextOffset) - segment.base;
    const averageFrameBytes = segmentRecords > 0 ? segment.bytes / segmentRecords : 1024;
    const estimate = Math.ceil(records * averageFrameBytes * 1.25) + 1024;
    return Math.min(Math.max(estimate, MIN_RESUME_CHUNK_BYTES), SCAN_CHUNK_BYTES);
  }

  /** Best known starting point at or before `target` in the segment: a cached cursor or the segment start. */
  private nearestCursor(segmentBase: number, target: number): { offset: number; position: number } {
    const exact = this.cursors.get(target);
    if (exact && exact.segmentBase === segmentBase) {
      // Refresh recency so an actively followed cursor is not evicted.
      this.cursors.delete(target);
      this.cursors.set(target, exact);
      return { offset: target, position: exact.position };
    }
    let best = { offset: segmentBase, position: 0 };
    for (const [offset, cursor] of this.cursors) {
      if (cursor.segmentBase === segmentBase && offset <= target && offset > best.offset) {
        best = { offset, position: cursor.position };
      }
    }
    return best;
  }

  private rememberCursor(offset: number, segmentBase: number, position: number): void {
    this.cursors.delete(offset);
    this.cursors.set(offset, { segmentBase, position });
    if (this.cursors.size > CURSOR_CACHE_SIZE) {
      const oldest = this.cursors.keys().next().value as number;
      this.cursors.delete(oldest);
    }
  }

  private async acquireReadHandle(segment: Segment): Promise<{ entry: ReadHandle; file: FileHandle }> {
    let entry = this.readHandles.get(segment.base);
    if (entry) {
      this.readHandles.delete(segment.base); // re-insert: Map order doubles as LRU order
    } else {
      entry = { handle: open(segment.path, 'r'), users: 0, retired: false, closed: undefined };
      entry.handle.catch(() => undefined); // observed below; avoid an unhandled rejection in between
    }
    this.readHandles.set(segment.base, entry);
    if (this.readHandles.size > READ_HANDLE_CACHE_SIZE) {
      const leastRecent = this.readHandles.keys().next().value as number;
      this.retireReadHandle(leastRecent);
    }
    entry.users++;
    try {
      return { entry, file: await entry.handle };
    } catch (err) {
      entry.users--;
      if (this.readHandles.get(segment.base) === entry) this.readHandles.delete(segment.base);
      throw err;
    }
  }

  private releaseReadHandle(entry: ReadHandle): void {
    entry.users--;
    if (entry.retired && entry.users === 0) this.closeReadHandle(entry);
  }

  private retireReadHandle(segmentBase: number): void {
    const entry = this.readHandles.get(segmentBase);
    if (!entry) return;
    this.readHandles.delete(segmentBase);
    entry.retired = true;
    if (entry.users === 0) this.closeReadHandle(entry);
  }

  private closeReadHandle(entry: ReadHandle): Promise<void> {
    entry.closed ??= entry.handle.then((file) => file.close()).catch(() => undefined);
    return entry.closed;
  }

  // ---- consumers --------------------------------------------------------------------------------

  private async writeCommittedOffset(consumer: string, nextOffset: number): Promise<void> {
    const finalPath = join(this.consumersDir, consumer + OFFSET_FILE_SUFFIX);
    const tmpPath = finalPath + TMP_SUFFIX;
    // write tmp + fsync, rename over, fsync dir: the file is always either the old or the new value.
    const file = await open(tmpPath, 'w');
    try {
      await file.writeFile(String(nextOffset));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmpPath, finalPath);
    await fsyncDir(this.consumersDir);
    this.committedOffsets.set(consumer, nextOffset);
  }

  // ---- retention --------------------------------------------------------------------------------

  private async removeExpiredSegments(): Promise<number> {
    let removed = 0;
    while (!this.released && this.segments.length > 1) {
      const oldest = this.segments[0];
      const following = this.segments[1];
      let sealedBytes = 0;
      for (let i = 0; i < this.segments.length - 1; i++) sealedBytes += this.segments[i].bytes;
      let removable = sealedBytes > this.retentionBytes;
      if (!removable && Number.isFinite(this.retentionMs)) {
        // Records carry no timestamps; the file's mtime is the time its newest record was written.
        const modified = (await stat(oldest.path)).mtimeMs;
        removable = modified < Date.now() - this.retentionMs;
      }
      // Checked after the await: a consumer may have committed meanwhile.
      if (!removable || following.base > this.minCommittedOffset()) break;
      if (this.segments[0] !== oldest) continue; // cannot happen (only retention shifts), but stay safe
      // Unindex first so no new read picks the segment; reads already holding its handle still finish.
      this.segments.shift();
      this.forgetSegment(oldest.base);
      try {
        await unlink(oldest.path);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      removed++;
    }
    if (removed > 0) await fsyncDir(this.segmentsDir);
    return removed;
  }

  private minCommittedOffset(): number {
    let min = Infinity;
    for (const offset of this.committedOffsets.values()) min = Math.min(min, offset);
    return min;
  }

  private forgetSegment(segmentBase: number): void {
    for (const [offset, cursor] of this.cursors) {
      if (cursor.segmentBase === segmentBase) this.cursors.delete(offset);
    }
    this.retireReadHandle(segmentBase);
  }

  // ---- shutdown ---------------------------------------------------------------------------------

  private async shutdown(): Promise<void> {
    this.closed = true; // new appends/commits are refused; queued ones still complete
    while (this.flushing) await this.flushDone;
    let retention: Promise<unknown>;
    do {
      retention = this.retentionChain;
      await retention;
    } while (retention !== this.retentionChain);
    await this.commitChains.idle();
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.waiters.clear();
    const readHandlesClosed: Promise<void>[] = [];
    for (const [segmentBase, entry] of [...this.readHandles]) {
      this.retireReadHandle(segmentBase);
      if (entry.closed) readHandlesClosed.push(entry.closed);
    }
    this.released = true;
    await Promise.all(readHandlesClosed);
    await this.activeHandle.close();
  }
}

// ---- helpers ------------------------------------------------------------------------------------

function segmentPath(segmentsDir: string, base: number): string {
  return join(segmentsDir, `${String(base).padStart(20, '0')}.log`);
}

async function listSegmentBases(segmentsDir: string): Promise<number[]> {
  const bases: number[] = [];
  for (const name of await readdir(segmentsDir)) {
    const match = SEGMENT_FILE_NAME.exec(name);
    if (!match) continue;
    const base = Number(match[1]);
    if (!Number.isSafeInteger(base)) throw new Error(`segment base offset out of range: ${name}`);
    bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

/**
 * Validates every frame of the last segment and cuts the file at the first torn or corrupt one.
 * A crash can only damage the tail of the active segment, because sealed segments were fsynced before rolling.
 */
async function recoverTail(file: FileHandle): Promise<{ records: number; validBytes: number; truncatedBytes: number }> {
  const size = (await file.stat()).size;
  let records = 0;
  const result = await walkFrames(file, 0, size, SCAN_CHUNK_BYTES, (chunk, payloadAt, payloadLength) => {
    const payload = chunk.subarray(payloadAt, payloadAt + payloadLength);
    if (crc32(payload) !== chunk.readUInt32BE(payloadAt - 4)) return false;
    records++;
    return true;
  });
  const validBytes = result.position;
  if (validBytes < size) {
    await file.truncate(validBytes);
    await file.sync();
  }
  return { records, validBytes, truncatedBytes: size - validBytes };
}

/**
 * Walks frames from `position` (a frame boundary) up to `limit`, reading large chunks and handing
 * each complete frame to `visit`. Returns where the walk stopped: after the last frame ('end'), at the
 * frame the visitor declined ('stopped'), or at an incomplete frame ('torn').
 */
async function walkFrames(
  file: FileHandle,
  position: number,
  limit: number,
  firstChunkBytes: number,
  visit: FrameVisitor,
): Promise<{ position: number; end: WalkEnd }> {
  let chunkBytes = firstChunkBytes;
  while (position < limit) {
    const wanted = Math.min(chunkBytes, limit - position);
    // A fresh buffer per chunk: payloads handed out are copies, but never let a reused buffer leak.
    const chunk = Buffer.allocUnsafe(wanted);
    const got = await readFully(file, chunk, wanted, position);
    let at = 0;
    while (at + FRAME_HEADER_BYTES <= got) {
      const payloadLength = chunk.readUInt32BE(at);
      if (at + FRAME_HEADER_BYTES + payloadLength > got) break;
      if (!visit(chunk, at + FRAME_HEADER_BYTES, payloadLength, position + at)) {
        return { position: position + at, end: 'stopped' };
      }
      at += FRAME_HEADER_BYTES + payloadLength;
    }
    if (at === 0) {
      // Not even one whole frame in this chunk: either the frame is bigger than the chunk, or it is torn.
      if (got < FRAME_HEADER_BYTES) return { position, end: 'torn' };
      const frameBytes = FRAME_HEADER_BYTES + chunk.readUInt32BE(0);
      if (got < wanted || position + frameBytes > limit) return { position, end: 'torn' };
      chunkBytes = frameBytes;
      continue;
    }
    position += at;
    chunkBytes = Math.min(Math.max(chunkBytes * 2, firstChunkBytes), SCAN_CHUNK_BYTES);
  }
  return { position, end: 'end' };
}

/** The group's frames as buffers to write in order: each frame's header, then its payload's bytes as given (no copy). */
function frameBuffers(group: PendingAppend[], records: number): Buffer[] {
  const headers = Buffer.allocUnsafe(records * FRAME_HEADER_BYTES);
  const out: Buffer[] = [];
  let at = 0;
  for (const append of group) {
    for (const payload of append.payloads) {
      const parts = payloadParts(payload);
      let length = 0;
      let crc = 0;
      for (const part of parts) {
        length += part.length;
        crc = crc32(part, crc);
      }
      headers.writeUInt32BE(length, at);
      headers.writeUInt32BE(crc, at + 4);
      out.push(headers.subarray(at, at + FRAME_HEADER_BYTES), ...parts);
      at += FRAME_HEADER_BYTES;
    }
  }
  return out;
}

/** At most this many buffers per writev (IOV_MAX is 1024 on Linux). */
const MAX_IOVECS = 1024;

async function writeFramesFully(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let i = 0;
  while (i < buffers.length) {
    const batch = buffers.slice(i, i + MAX_IOVECS);
    const want = batch.reduce((a, b) => a + b.length, 0);
    const { bytesWritten } = await file.writev(batch, position);
    if (bytesWritten < want) {
      // A short write: finish this batch byte-exactly, the slow way.
      if (bytesWritten <= 0) throw new Error('write made no progress');
      await writeFully(file, Buffer.concat(batch).subarray(bytesWritten), position + bytesWritten);
    }
    position += want;
    i += batch.length;
  }
}

async function writeFully(file: FileHandle, data: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await file.write(data, written, data.length - written, position + written);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    written += bytesWritten;
  }
}

/** Positional read; returns fewer than `length` bytes only at end of file. */
async function readFully(file: FileHandle, into: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(into, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function fsyncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function loadCommittedOffsets(consumersDir: string): Promise<Map<string, number>> {
  const offsets = new Map<string, number>();
  for (const name of await readdir(consumersDir)) {
    if (name.endsWith(OFFSET_FILE_SUFFIX + TMP_SUFFIX)) {
      // Leftover of a commit interrupted before its rename; the previous value is still in place.
      await unlink(join(consumersDir, name)).catch(() => undefined);
      continue;
    }
    if (!name.endsWith(OFFSET_FILE_SUFFIX)) continue;
    const consumer = name.slice(0, -OFFSET_FILE_SUFFIX.length);
    if (!CONSUMER_NAME.test(consumer)) continue;
    const offset = await readOffsetFile(join(consumersDir, name));
    if (offset !== undefined) offsets.set(consumer, offset);
  }
  return offsets;
}

async function readOffsetFile(path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  const trimmed = text.trim();
  const offset = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(offset)) {
    throw new Error(`invalid committed offset in ${path}: ${JSON.stringify(text)}`);
  }
  return offset;
}

function assertConsumerName(consumer: string): void {
  if (typeof consumer !== 'string' || !CONSUMER_NAME.test(consumer)) {
    throw new Error(`invalid consumer name ${JSON.stringify(consumer)}: must match ${CONSUMER_NAME}`);
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
