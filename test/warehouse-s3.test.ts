// A node whose warehouse is in S3 (s3rver in-process): events ingested over HTTP land as objects, SQL counts them,
// a restart with an empty local cache still answers, orphans of an unfinished batch are removed from the bucket,
// and compaction merges objects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pad } from '../src/warehouse/layout.js';
import { S3WarehouseFiles } from '../src/warehouse/s3-files.js';
import { DuckEngine } from '../src/warehouse/duckdb.js';
import { filesUnder, lit, startTestNode, type TestNode } from './helpers.js';
import { readTrinoDdl, startTestS3, TEST_BUCKET, type TestS3 } from './s3-helpers.js';

describe('warehouse in S3', () => {
  let s3: TestS3;
  let t: TestNode | null = null;
  let dataDir: string;
  let bucketView: S3WarehouseFiles;
  const prefix = `node-${randomUUID()}`;
  let env: Record<string, string>;

  before(async () => {
    s3 = await startTestS3();
    dataDir = await mkdtemp(join(tmpdir(), 'causality-s3node-'));
    env = {
      S3_BUCKET: TEST_BUCKET,
      S3_ENDPOINT: s3.endpoint,
      S3_PREFIX: prefix,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      DETECTOR: 'off',
      COMPACT_MIN_FILES: '1000', // the timer must not compact behind the test's back; the test compacts itself
    };
    // The test's own view of the bucket (its cache dir is separate from the node's).
    bucketView = new S3WarehouseFiles({
      s3: { endpoint: s3.endpoint, bucket: TEST_BUCKET, prefix, region: 'us-east-1', accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      cacheDir: join(dataDir, 'test-view-cache'),
      cacheBytes: 1024 ** 3,
    });
  });
  after(async () => {
    await t?.stop();
    bucketView?.close();
    await s3?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const send = async (n: number, tag: string) => {
    const events = Array.from({ length: n }, (_, i) => ({ eventId: randomUUID(), deviceId: `d${i % 7}`, screenView: { screenName: `${tag}-${i}` } }));
    const r = await t!.post('/v1/events/batch', { events }, { key: t!.keys.appA });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.accepted, n, r.text);
    await t!.node.flush();
  };
  const count = async () => (await t!.sql('SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events')).rows[0];

  test('ingested events become objects in the bucket and SQL counts them', async () => {
    t = await startTestNode(env, { dataDir });
    await send(40, 'first');
    await send(25, 'second');
    const objects = await bucketView.list('events');
    assert.ok(objects.length >= 2, `two flushes, at least two objects: ${JSON.stringify(objects)}`);
    assert.ok(objects.every((o) => o.key.startsWith('events/app_id=appA/date=')), JSON.stringify(objects));
    assert.equal(existsSync(join(dataDir, 'warehouse')), false, 'nothing is written to the local warehouse directory');
    assert.deepEqual(await count(), [65, 65]);
    const cached = await filesUnder(join(dataDir, 'cache', 'warehouse'));
    assert.equal(cached.length, objects.length, 'the query fetched every object it read into the cache');
    const metrics = (await t.get('/metrics')).text;
    assert.match(metrics, new RegExp(`^causality_warehouse_cache_downloads_total ${objects.length}$`, 'm'));
    assert.match(metrics, /^causality_warehouse_cache_bytes [1-9]\d*$/m);
    // The files carry exactly the columns the shipped Trino DDL declares (app_id and date live in the path).
    const engine = await DuckEngine.create({ allowedDirectories: [bucketView.readableRoot] });
    try {
      const conn = await engine.connect();
      const schema = await conn.runAndReadAll(`SELECT name FROM parquet_schema(${lit(await bucketView.localPath(objects[0]!.key))}) WHERE name <> 'duckdb_schema'`);
      conn.closeSync();
      const ddl = await readTrinoDdl();
      assert.deepEqual(schema.getRowsJS().map((r) => r[0]), ddl.columns.map((c) => c.name).filter((n) => !ddl.partitionedBy.includes(n)));
    } finally {
      engine.close();
    }
    // Metrics endpoints read only their days' partitions through the same cache.
    const today = new Date().toISOString().slice(0, 10);
    const pv = await t.get(`/v1/metrics/pageviews?app_id=appA&from=${today}&to=${today}`, { key: t.keys.appA });
    assert.equal(pv.status, 200, pv.text);
  });

  test('a restart with an empty cache still answers; files of an unfinished batch are removed from the bucket', async () => {
    await t!.stop();
    const committed = t!.node.sink.committedOffset;
    await rm(join(dataDir, 'cache'), { recursive: true, force: true });
    // A batch published but never committed (a crash between publish and commit) leaves an orphan object.
    const today = new Date().toISOString().slice(0, 10);
    const orphan = `events/app_id=appA/date=${today}/b${pad(committed)}-${pad(committed + 3)}-0.parquet`;
    const junk = join(dataDir, 'orphan.parquet');
    await writeFile(junk, 'not even parquet');
    await bucketView.publish(junk, orphan);
    assert.ok((await bucketView.list('events')).some((o) => o.key === orphan));

    t = await startTestNode(env, { dataDir });
    assert.equal((await bucketView.list('events')).some((o) => o.key === orphan), false, 'the sink removed the orphan on start');
    assert.deepEqual(await count(), [65, 65]);
    await send(10, 'third');
    assert.deepEqual(await count(), [75, 75]);
  });

  test('compaction merges the objects of a partition in the bucket', async () => {
    const before = await t!.node.warehouse.liveFiles({ appId: 'appA' });
    assert.ok(before.length >= 3, `three flushes: ${before.length} files`);
    assert.equal(await t!.node.warehouse.compact(2), 1);
    const after = await t!.node.warehouse.liveFiles({ appId: 'appA' });
    assert.equal(after.length, 1);
    assert.match(after[0]!.key, /\/c\d{20}-\d{20}\.parquet$/);
    assert.ok((await bucketView.list('events')).some((o) => o.key === after[0]!.key), 'the compacted file is an object in the bucket');
    assert.deepEqual(await count(), [75, 75]);
  });

  test('a query bounded by ts fetches only the partitions of its days', async () => {
    const days = ['2026-11-20', '2026-11-21', '2026-11-22'];
    const events = days.flatMap((day, d) =>
      Array.from({ length: d + 2 }, (_, i) => ({ eventId: randomUUID(), deviceId: `old${i}`, timestamp: `${day}T12:00:00Z`, screenView: { screenName: `old-${day}` } })),
    );
    const r = await t!.post('/v1/events/batch', { events }, { key: t!.keys.appA });
    assert.equal(r.status, 202, r.text);
    await t!.node.flush();
    await t!.stop();
    await rm(join(dataDir, 'cache'), { recursive: true, force: true });
    t = await startTestNode(env, { dataDir });

    const oneDay = await t.sql(`SELECT count(*) FROM events WHERE ts >= '2026-11-21' AND ts < '2026-11-22'`);
    assert.deepEqual(oneDay.rows, [[3]]);
    const cachedDates = async () =>
      [...new Set((await filesUnder(join(dataDir, 'cache', 'warehouse'))).map((f) => /date=([\d-]+)/.exec(f)?.[1]))].sort();
    assert.deepEqual(await cachedDates(), ['2026-11-21', '2026-11-22'], 'the bound day (the upper one is inclusive: conservative) and nothing else');
    const byDay = await t.sql(`SELECT strftime(ts, '%Y-%m-%d') AS day, count(*) FROM events WHERE ts BETWEEN '2026-11-20' AND '2026-11-22 23:59:59' GROUP BY 1 ORDER BY 1`);
    assert.deepEqual(byDay.rows, [['2026-11-20', 2], ['2026-11-21', 3], ['2026-11-22', 4]]);
    assert.deepEqual(await count(), [84, 84], 'an unbounded query still reads every day');
  });
});
