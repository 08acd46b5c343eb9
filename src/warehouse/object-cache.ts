// A bounded read-through cache of immutable remote objects on local disk, so DuckDB (which cannot read S3 without
// the httpfs extension) reads local files. Objects never change (warehouse files are named by their log-offset
// range), so a cached copy is valid for as long as it exists: no revalidation.
//
// Eviction is least-recently-used by bytes, and never touches a file a reader holds (pinned by acquire() until
// release()). Pins rather than a "not touched in the last N seconds" rule: a query may run longer than any N, and
// DuckDB opens a query's files one after another, so a file unpinned early could vanish before it is opened.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/** Writes the object `key` to the local file `destination` (created or truncated); rejects on any failure. */
export type DownloadObject = (key: string, destination: string) => Promise<void>;

export interface HeldFiles {
  /** Local paths, in the order of the keys asked for. */
  paths: string[];
  /** Lets the cache evict them again. Idempotent. */
  release(): void;
}

/** A reader asked for more bytes at once than the cache may hold. */
export class CacheTooSmallError extends Error {
  constructor(
    readonly requestedBytes: number,
    readonly capacityBytes: number,
  ) {
    super(`the files to read take ${requestedBytes} bytes, more than the local cache holds (${capacityBytes} bytes)`);
  }
}

export interface ObjectCacheStats {
  downloads: number;
  downloadedBytes: number;
  hits: number;
  evictions: number;
  bytes: number;
  files: number;
}

const TMP_DIR = '.partial';

export class ObjectCache {
  /** Cached files in least- to most-recently-used order (a Map keeps insertion order; touch = delete + set). */
  private readonly entries = new Map<string, number>();
  private readonly pins = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<void>>();
  private totalBytes = 0;
  private ready: Promise<void> | null = null;
  private readonly stats = { downloads: 0, downloadedBytes: 0, hits: 0, evictions: 0 };
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly dir: string,
    readonly capacityBytes: number,
    private readonly download: DownloadObject,
    /** Downloads run at once at most (a query over hundreds of files must not open hundreds of connections). */
    private readonly maxConcurrentDownloads = 8,
  ) {}

  snapshot(): ObjectCacheStats {
    return { ...this.stats, bytes: this.totalBytes, files: this.entries.size };
  }

  /** The local path of `key`, downloaded if missing; not pinned (it may be evicted by later downloads). */
  async path(key: string): Promise<string> {
    await this.ensure(key);
    return this.pathOf(key);
  }

  /** Local paths of `files`, downloaded if missing and kept until release(). Refused when they cannot fit at all. */
  async acquire(files: ReadonlyArray<{ key: string; bytes: number }>): Promise<HeldFiles> {
    const requested = files.reduce((n, f) => n + f.bytes, 0);
    if (requested > this.capacityBytes) throw new CacheTooSmallError(requested, this.capacityBytes);
    const keys = files.map((f) => f.key);
    // Pinned before downloading: a download finishing later must not evict a file this reader already has.
    for (const k of keys) this.pins.set(k, (this.pins.get(k) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const k of keys) {
        const n = (this.pins.get(k) ?? 1) - 1;
        if (n > 0) this.pins.set(k, n);
        else this.pins.delete(k);
      }
      this.evict();
    };
    try {
      await Promise.all(keys.map((k) => this.ensure(k)));
    } catch (err) {
      release();
      throw err;
    }
    return { paths: keys.map((k) => this.pathOf(k)), release };
  }

  private pathOf(key: string): string {
    if (!key || key.startsWith('/') || key.split('/').some((s) => s === '..' || s === '.' || s === '') || key.startsWith(TMP_DIR + '/')) {
      throw new Error(`not a cacheable object key: ${JSON.stringify(key)}`);
    }
    return join(this.dir, key);
  }

  private async ensure(key: string): Promise<void> {
    const path = this.pathOf(key);
    await (this.ready ??= this.load());
    const size = this.entries.get(key);
    if (size !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, size);
      this.stats.hits++;
      return;
    }
    // Concurrent readers of one missing key share one download.
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetch(key, path).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    await pending;
  }

  private async fetch(key: string, path: string): Promise<void> {
    await this.slot();
    try {
      // Downloaded beside the cache, then renamed: a reader never sees a partial file under the key's path.
      const tmp = join(this.dir, TMP_DIR, randomUUID());
      await mkdir(dirname(tmp), { recursive: true });
      try {
        await this.download(key, tmp);
        const { size } = await stat(tmp);
        await mkdir(dirname(path), { recursive: true });
        await rename(tmp, path);
        this.entries.set(key, size);
        this.totalBytes += size;
        this.stats.downloads++;
        this.stats.downloadedBytes += size;
      } finally {
        await rm(tmp, { force: true });
      }
    } finally {
      this.unslot();
    }
    this.evict();
  }

  /**
   * Least recently used first, skipping pinned files, until the cache is within its bound. The most recently used
   * file stays even so: it is the one just asked for, and its path is about to be handed out.
   */
  private evict(): void {
    if (this.totalBytes <= this.capacityBytes) return;
    let newest: string | undefined;
    for (const key of this.entries.keys()) newest = key;
    for (const [key, size] of this.entries) {
      if (this.totalBytes <= this.capacityBytes) break;
      if (this.pins.has(key) || key === newest) continue;
      this.entries.delete(key);
      this.totalBytes -= size;
      this.stats.evictions++;
      // Synchronous: a download of the same key starting right after must not have its fresh file unlinked.
      rmSync(join(this.dir, key), { force: true });
    }
  }

  /** Adopts what a previous run left (a warm cache survives restarts), oldest first; drops partial downloads. */
  private async load(): Promise<void> {
    await rm(join(this.dir, TMP_DIR), { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    const found: Array<{ key: string; size: number; mtimeMs: number }> = [];
    for (const e of await readdir(this.dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path;
      const full = join(parent, e.name);
      const s = await stat(full).catch(() => null);
      if (s) found.push({ key: relative(this.dir, full).split(sep).join('/'), size: s.size, mtimeMs: s.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) {
      this.entries.set(f.key, f.size);
      this.totalBytes += f.size;
    }
    this.evict();
  }

  private async slot(): Promise<void> {
    if (this.active < this.maxConcurrentDownloads) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private unslot(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes on to the next waiter
    else this.active--;
  }
}
