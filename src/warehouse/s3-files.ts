// Warehouse files in S3-compatible object storage: the same Hive-partitioned layout under <bucket>/<prefix>/.
// DuckDB reads them through a bounded local read-through cache (its httpfs extension cannot be assumed).
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WarehouseFiles } from './files.js';
import { ObjectCache, type HeldFiles, type ObjectCacheStats } from './object-cache.js';

export interface S3Settings {
  /** S3-compatible endpoint (path-style addressing); null = AWS. */
  endpoint: string | null;
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slashes ('' = the bucket's root). */
  prefix: string;
  region: string;
  /** Absent: the SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
}

export interface S3WarehouseFilesOptions {
  s3: S3Settings;
  /** Local directory of the read-through cache (DuckDB's only readable root). */
  cacheDir: string;
  cacheBytes: number;
  /** Keys per ListObjectsV2 page and per DeleteObjects request (S3's limit, 1000; smaller in tests). */
  pageSize?: number;
}

export class S3WarehouseFiles implements WarehouseFiles {
  private readonly client: S3Client;
  private readonly cache: ObjectCache;
  private readonly base: string;
  private readonly pageSize: number;

  constructor(private readonly o: S3WarehouseFilesOptions) {
    const { s3 } = o;
    this.client = new S3Client({
      region: s3.region,
      ...(s3.endpoint ? { endpoint: s3.endpoint, forcePathStyle: true } : {}),
      ...(s3.accessKeyId && s3.secretAccessKey ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } : {}),
      // Checksums only where S3 requires them: streamed aws-chunked trailers are not understood by every S3-compatible server.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.pageSize = Math.min(1000, o.pageSize ?? 1000);
    this.base = s3.prefix ? `${s3.prefix.replace(/^\/+|\/+$/g, '')}/` : '';
    this.cache = new ObjectCache(o.cacheDir, o.cacheBytes, (key, destination) => this.download(key, destination));
  }

  get readableRoot(): string {
    return this.o.cacheDir;
  }

  get capacityBytes(): number {
    return this.cache.capacityBytes;
  }

  cacheStats(): ObjectCacheStats {
    return this.cache.snapshot();
  }

  /** The cache's size and traffic on /metrics (read when scraped). */
  registerMetrics(registry: Registry): void {
    const stat = (name: keyof ObjectCacheStats) => () => this.cache.snapshot()[name];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
    gauge('causality_warehouse_cache_bytes', 'Bytes of S3 objects in the local read-through cache', stat('bytes'));
    gauge('causality_warehouse_cache_files', 'S3 objects in the local read-through cache', stat('files'));
    counter('causality_warehouse_cache_downloads_total', 'S3 objects fetched into the cache', stat('downloads'));
    counter('causality_warehouse_cache_downloaded_bytes_total', 'Bytes fetched from S3 into the cache', stat('downloadedBytes'));
    counter('causality_warehouse_cache_hits_total', 'Reads served by a cached copy', stat('hits'));
    counter('causality_warehouse_cache_evictions_total', 'Cached objects evicted to stay under S3_CACHE_BYTES', stat('evictions'));
  }

  /** One PutObject with a known length: S3 makes the object visible whole or not at all; the local file is then removed. */
  async publish(localFile: string, key: string): Promise<void> {
    const { size } = await stat(localFile);
    await this.client.send(
      new PutObjectCommand({ Bucket: this.o.s3.bucket, Key: this.base + key, Body: createReadStream(localFile), ContentLength: size, ContentType: 'application/vnd.apache.parquet' }),
    );
    await rm(localFile, { force: true });
  }

  /** Like the local directory: `prefix` is a folder ('events' lists events/…, never events2/…); only Parquet files. */
  async list(prefix: string): Promise<Array<{ key: string; bytes: number }>> {
    const folder = prefix.replace(/^\/+|\/+$/g, '');
    const Prefix = this.base + (folder ? `${folder}/` : '');
    const out: Array<{ key: string; bytes: number }> = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.o.s3.bucket, Prefix, ContinuationToken, MaxKeys: this.pageSize }));
      for (const obj of page.Contents ?? []) {
        if (!obj.Key?.endsWith('.parquet')) continue;
        out.push({ key: obj.Key.slice(this.base.length), bytes: obj.Size ?? 0 });
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return out;
  }

  async remove(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += this.pageSize) {
      const chunk = keys.slice(i, i + this.pageSize);
      const r = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.o.s3.bucket, Delete: { Objects: chunk.map((k) => ({ Key: this.base + k })), Quiet: true } }),
      );
      const failed = (r.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length) throw new Error(`S3 DeleteObjects failed for ${failed.length} keys, e.g. ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`);
    }
  }

  localPath(key: string): Promise<string> {
    return this.cache.path(key);
  }

  acquire(files: ReadonlyArray<{ key: string; bytes: number }>): Promise<HeldFiles> {
    return this.cache.acquire(files);
  }

  close(): void {
    this.client.destroy();
  }

  private async download(key: string, destination: string): Promise<void> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.o.s3.bucket, Key: this.base + key }));
    if (!r.Body) throw new Error(`S3 GetObject ${key}: no body`);
    await pipeline(r.Body as Readable, createWriteStream(destination));
    const { size } = await stat(destination);
    if (r.ContentLength !== undefined && size !== r.ContentLength) {
      throw new Error(`S3 GetObject ${key}: got ${size} of ${r.ContentLength} bytes`);
    }
  }
}
