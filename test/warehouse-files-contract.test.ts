// One contract for the WarehouseFiles port, run against the local directory and S3 (s3rver in-process), plus the
// S3 read-through cache's own promises: bounded, LRU, pins held files, one download per key, warm across restarts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalWarehouseFiles, type WarehouseFiles } from '../src/warehouse/files.js';
import { CacheTooSmallError } from '../src/warehouse/object-cache.js';
import { S3WarehouseFiles } from '../src/warehouse/s3-files.js';
import { filesUnder } from './helpers.js';
import { startTestS3, TEST_BUCKET, type TestS3 } from './s3-helpers.js';

interface Opened {
  files: WarehouseFiles;
  /** Objects downloaded into the local cache so far (S3 only). */
  downloads?: () => number;
}

interface Subject {
  name: string;
  /** A fresh, empty store; `cacheDir` reuses a cache directory (S3), `cacheBytes` bounds it. */
  open(o?: { cacheBytes?: number; cacheDir?: string; prefix?: string }): Promise<Opened>;
}

let s3: TestS3;
let scratch: string;
const opened: WarehouseFiles[] = [];

before(async () => {
  s3 = await startTestS3();
  scratch = await mkdtemp(join(tmpdir(), 'causality-files-'));
});
after(async () => {
  for (const f of opened) f.close();
  await s3?.close();
  await rm(scratch, { recursive: true, force: true });
});

const local: Subject = {
  name: 'LocalWarehouseFiles',
  async open() {
    const files = new LocalWarehouseFiles(join(scratch, `local-${randomUUID()}`));
    opened.push(files);
    return { files };
  },
};

const openS3 = (o: { cacheBytes?: number; cacheDir?: string; prefix?: string; pageSize?: number } = {}) => {
  const files = new S3WarehouseFiles({
    s3: { endpoint: s3.endpoint, bucket: TEST_BUCKET, prefix: o.prefix ?? `t-${randomUUID()}`, region: 'us-east-1', accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    cacheDir: o.cacheDir ?? join(scratch, `cache-${randomUUID()}`),
    cacheBytes: o.cacheBytes ?? 1024 ** 3,
    pageSize: o.pageSize,
  });
  opened.push(files);
  return files;
};

const remote: Subject = {
  name: 'S3WarehouseFiles (s3rver)',
  async open(o = {}) {
    const files = openS3(o);
    return { files, downloads: () => files.cacheStats().downloads };
  },
};

/** Writes `bytes` random bytes to a fresh local file; returns its path and content. */
async function localFile(bytes: number): Promise<{ path: string; content: Buffer }> {
  const content = randomBytes(bytes);
  const path = join(scratch, `src-${randomUUID()}.parquet`);
  await writeFile(path, content);
  return { path, content };
}

async function publishNew(files: WarehouseFiles, key: string, bytes = 1000): Promise<Buffer> {
  const f = await localFile(bytes);
  await files.publish(f.path, key);
  return f.content;
}

const sorted = (l: Array<{ key: string; bytes: number }>) => [...l].sort((a, b) => a.key.localeCompare(b.key));

for (const subject of [local, remote]) {
  describe(`WarehouseFiles contract: ${subject.name}`, () => {
    test('publish, list (nested keys, by folder prefix) and remove', async () => {
      const { files } = await subject.open();
      const a = 'events/app_id=a/date=2026-01-01/b00000000000000000000-00000000000000000010-0.parquet';
      const b = 'events/app_id=a/date=2026-01-02/b00000000000000000010-00000000000000000020-0.parquet';
      const c = 'events/app_id=b%2Fx/date=2026-01-01/c00000000000000000000-00000000000000000020.parquet';
      const other = 'eventsx/app_id=a/z.parquet';
      const src = await localFile(1234);
      await files.publish(src.path, a);
      assert.equal(existsSync(src.path), false, 'publish moves the local file away');
      await publishNew(files, b, 2000);
      await publishNew(files, c, 10);
      await publishNew(files, other, 7);

      assert.deepEqual(sorted(await files.list('')), sorted([
        { key: a, bytes: 1234 },
        { key: b, bytes: 2000 },
        { key: c, bytes: 10 },
        { key: other, bytes: 7 },
      ]));
      assert.deepEqual(sorted(await files.list('events')), sorted([
        { key: a, bytes: 1234 },
        { key: b, bytes: 2000 },
        { key: c, bytes: 10 },
      ]), 'a prefix is a folder: eventsx/ is not under events/');
      assert.deepEqual(await files.list('events/app_id=a/date=2026-01-02'), [{ key: b, bytes: 2000 }]);
      assert.deepEqual(await files.list('nothing/here'), []);

      await files.remove([a, c, 'events/app_id=a/date=2026-01-03/never-published.parquet']);
      assert.deepEqual(sorted(await files.list('')), sorted([
        { key: b, bytes: 2000 },
        { key: other, bytes: 7 },
      ]));
      await files.remove([]);
    });

    test('publish is atomic: a reader lists the whole object or nothing; a failed publish leaves nothing', async () => {
      const { files } = await subject.open();
      const size = 24 * 1024 * 1024;
      const key = 'events/app_id=a/date=2026-01-01/b00000000000000000000-00000000000000000001-0.parquet';
      const src = await localFile(size);
      let publishing = true;
      const seen: number[] = [];
      const watcher = (async () => {
        while (publishing) {
          for (const f of await files.list('events')) if (f.key === key) seen.push(f.bytes);
          await new Promise((r) => setImmediate(r));
        }
      })();
      await files.publish(src.path, key);
      publishing = false;
      await watcher;
      assert.ok(seen.every((n) => n === size), `partial sizes listed: ${[...new Set(seen)].join(', ')}`);
      assert.deepEqual(await readFile(await files.localPath(key)), src.content);

      const missing = join(scratch, `missing-${randomUUID()}.parquet`);
      await assert.rejects(files.publish(missing, 'events/app_id=a/date=2026-01-01/b-failed.parquet'));
      assert.deepEqual((await files.list('events')).map((f) => f.key), [key]);
    });

    test('localPath and acquire give readable local copies with the published bytes, under readableRoot', async () => {
      const { files } = await subject.open();
      const keys = [1, 2, 3].map((i) => `events/app_id=a/date=2026-01-0${i}/b${i}.parquet`);
      const contents = await Promise.all(keys.map((k, i) => publishNew(files, k, 5000 + i)));
      for (const [i, k] of keys.entries()) {
        const p = await files.localPath(k);
        assert.ok(p.startsWith(files.readableRoot + '/'), `${p} is under ${files.readableRoot}`);
        assert.deepEqual(await readFile(p), contents[i]);
      }
      const held = await files.acquire(keys.map((key, i) => ({ key, bytes: 5000 + i })));
      assert.equal(held.paths.length, 3);
      for (const [i, p] of held.paths.entries()) assert.deepEqual(await readFile(p), contents[i]);
      held.release();
      held.release(); // idempotent
    });

    test('concurrent readers of one key share one local copy', async () => {
      const { files, downloads } = await subject.open();
      const key = 'events/app_id=a/date=2026-01-01/b1.parquet';
      const content = await publishNew(files, key, 3 * 1024 * 1024);
      const paths = await Promise.all(Array.from({ length: 12 }, () => files.localPath(key)));
      assert.equal(new Set(paths).size, 1);
      assert.deepEqual(await readFile(paths[0]!), content);
      if (downloads) assert.equal(downloads(), 1, 'twelve concurrent reads, one download');
    });
  });
}

describe('S3 read-through cache', () => {
  const fileBytes = 100_000;
  const keyOf = (i: number) => `events/app_id=a/date=2026-01-${String(i).padStart(2, '0')}/b${i}.parquet`;
  const cacheDiskBytes = async (dir: string) => {
    let n = 0;
    for (const f of await filesUnder(dir)) n += (await stat(f)).size;
    return n;
  };

  test('stays under its bound, evicts the least recently used, and downloads an evicted file again on demand', async () => {
    const bound = Math.floor(fileBytes * 2.5);
    const files = openS3({ cacheBytes: bound });
    const contents = new Map<string, Buffer>();
    for (let i = 1; i <= 5; i++) contents.set(keyOf(i), await publishNew(files, keyOf(i), fileBytes));
    for (let i = 1; i <= 5; i++) {
      await files.localPath(keyOf(i));
      assert.ok((await cacheDiskBytes(files.readableRoot)) <= bound, `after reading ${i} files the cache holds at most ${bound} bytes`);
    }
    assert.equal(files.cacheStats().downloads, 5);
    assert.ok(files.cacheStats().evictions >= 3);
    // 4 and 5 are the most recently used: still there. 1 was evicted: fetched again, same bytes.
    await files.localPath(keyOf(5));
    assert.equal(files.cacheStats().downloads, 5, 'a cached file is not downloaded again');
    assert.deepEqual(await readFile(await files.localPath(keyOf(1))), contents.get(keyOf(1)));
    assert.equal(files.cacheStats().downloads, 6, 'an evicted file is downloaded again');
    assert.ok((await cacheDiskBytes(files.readableRoot)) <= bound);
  });

  test('never evicts a file a reader holds; refuses a read larger than the whole cache', async () => {
    const bound = Math.floor(fileBytes * 2.5);
    const files = openS3({ cacheBytes: bound });
    for (let i = 1; i <= 4; i++) await publishNew(files, keyOf(i), fileBytes);
    const held = await files.acquire([1, 2].map((i) => ({ key: keyOf(i), bytes: fileBytes })));
    // Reading two more files overflows the bound; the held ones survive, and so does the file just read.
    await files.localPath(keyOf(3));
    const fourth = await files.localPath(keyOf(4));
    for (const p of held.paths) assert.equal((await stat(p)).size, fileBytes, `${p} is still there while held`);
    assert.equal((await stat(fourth)).size, fileBytes, 'the file just asked for is not evicted by its own download');
    assert.equal(existsSync(join(files.readableRoot, keyOf(3))), false, 'the unheld older one was');
    held.release();
    assert.ok((await cacheDiskBytes(files.readableRoot)) <= bound, 'back under the bound once released');

    await assert.rejects(
      files.acquire([1, 2, 3].map((i) => ({ key: keyOf(i), bytes: fileBytes }))),
      (err: unknown) => err instanceof CacheTooSmallError && err.requestedBytes === 3 * fileBytes,
    );
  });

  test('a restart adopts the cached files (no download), and drops partial downloads', async () => {
    const cacheDir = join(scratch, `cache-${randomUUID()}`);
    const prefix = `t-${randomUUID()}`;
    const first = openS3({ cacheDir, prefix });
    const content = await publishNew(first, keyOf(1), fileBytes);
    await first.localPath(keyOf(1));
    await mkdir(join(cacheDir, '.partial'), { recursive: true });
    await writeFile(join(cacheDir, '.partial', 'interrupted-download'), 'x');
    const second = openS3({ cacheDir, prefix });
    assert.deepEqual(await readFile(await second.localPath(keyOf(1))), content);
    assert.equal(second.cacheStats().downloads, 0);
    assert.equal(second.cacheStats().hits, 1);
    assert.equal(existsSync(join(cacheDir, '.partial', 'interrupted-download')), false);
    assert.equal(second.cacheStats().bytes, fileBytes, 'the partial download is not counted');
  });

  test('list pages through, and remove chunks, more keys than one request takes', async () => {
    const files = openS3({ pageSize: 10 }); // S3's own limit is 1000 keys a request; 10 keeps the test quick
    const keys = Array.from({ length: 25 }, (_, i) => `events/app_id=a/date=2026-01-01/b${String(i).padStart(5, '0')}.parquet`);
    for (const k of keys) await publishNew(files, k, 10);
    assert.deepEqual((await files.list('events')).map((f) => f.key).sort(), keys);
    await files.remove(keys.slice(0, 23));
    assert.deepEqual((await files.list('events')).map((f) => f.key).sort(), keys.slice(23));
  });
});
