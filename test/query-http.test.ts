// Query through real HTTP: app scoping, the read-only SQL guard, limits and timeouts, metrics endpoints, compaction.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { QueryResult } from '../src/query/query-service.js';
import { lit, startTestNode, TEST_KEYS, type TestNode } from './helpers.js';

const APP_KEYS = `appA:${TEST_KEYS.appA},appB:${TEST_KEYS.appB},shop:keyShop_12345678`;

const at = (iso: string) => Date.parse(iso);

async function sendBatch(t: TestNode, key: string, events: unknown[]): Promise<void> {
  const r = await t.post('/v1/events/batch', { events }, { key });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.body.accepted, events.length, r.text);
}

describe('SQL over HTTP', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ CAUSALITY_APP_KEYS: APP_KEYS, METRICS_CACHE_MS: '0' });
    const ev = (i: number) => ({ eventId: randomUUID(), deviceId: `d${i}`, screenView: { screenName: `S${i}` } });
    await sendBatch(t, t.keys.appA, [ev(1), ev(2), ev(3)]);
    await sendBatch(t, t.keys.appB, [ev(4), ev(5)]);
    await t.node.flush();
  });
  after(() => t?.close());

  test('an app key sees only its own rows; the admin key sees every app', async () => {
    const countAs = async (key: string) => (await t.sql('SELECT count(*) AS n FROM events', key)).rows;
    assert.deepEqual(await countAs(t.keys.appA), [[3]]);
    assert.deepEqual(await countAs(t.keys.appB), [[2]]);
    assert.deepEqual((await t.sql('SELECT app_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1', t.keys.admin)).rows, [
      ['appA', 3],
      ['appB', 2],
    ]);
    // Asking for the other app's rows explicitly finds nothing.
    assert.deepEqual((await t.sql(`SELECT count(*) FROM events WHERE app_id = 'appB'`, t.keys.appA)).rows, [[0]]);
    assert.deepEqual((await t.sql(`SELECT DISTINCT app_id FROM events`, t.keys.appB)).rows, [['appB']]);
  });

  test('result shape: columns, types, rows, truncated, elapsedMs', async () => {
    const r = await t.post<QueryResult>('/v1/query', { sql: 'SELECT device_id, screen_name FROM events ORDER BY device_id' }, { key: t.keys.appA });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.body.elapsedMs, 'number');
    assert.deepEqual(
      { ...r.body, elapsedMs: 0 },
      {
        columns: ['device_id', 'screen_name'],
        types: ['VARCHAR', 'VARCHAR'],
        rows: [
          ['d1', 'S1'],
          ['d2', 'S2'],
          ['d3', 'S3'],
        ],
        truncated: false,
        elapsedMs: 0,
      },
    );
  });

  test('CTEs and range() are allowed', async () => {
    const cte = await t.sql('WITH per_device AS (SELECT device_id, count(*) AS n FROM events GROUP BY 1) SELECT sum(n) FROM per_device', t.keys.appA);
    assert.deepEqual(cte.rows, [[3]]);
    const range = await t.sql('SELECT count(*), sum(range) FROM range(10)', t.keys.appA);
    assert.deepEqual(range.rows, [[10, 45]]);
  });

  const refusals: Array<[string, string]> = [
    ["INSERT INTO events (app_id) VALUES ('x')", 'read_only'],
    ['CREATE TABLE t AS SELECT 1', 'read_only'],
    ['DROP VIEW events', 'read_only'],
    ["COPY (SELECT * FROM events) TO '/tmp/causality-exfil.csv'", 'read_only'],
    ['PRAGMA database_list', 'read_only'],
    ["SET enable_external_access = true", 'read_only'],
    ["ATTACH '/tmp/causality-other.db' AS other", 'read_only'],
    ["SELECT * FROM read_csv('/etc/passwd')", 'forbidden_function'],
    ["SELECT * FROM '/etc/passwd'", 'forbidden_table'],
    ['SELECT * FROM main.events', 'forbidden_table'],
    ["SELECT getenv('HOME')", 'forbidden_function'],
    ['SELECT * FROM duckdb_settings()', 'forbidden_function'],
    ['SELECT 1; SELECT 2', 'sql_error'],
  ];
  for (const [sql, code] of refusals) {
    test(`refused with 400 ${code}: ${sql}`, async () => {
      for (const key of [t.keys.appA, t.keys.admin]) {
        const r = await t.post('/v1/query', { sql }, { key });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.error.code, code, r.text);
        assert.equal(r.body.error.field, 'sql');
        assert.equal(typeof r.body.error.message, 'string');
      }
    });
  }

  test("an app key cannot read another app's Parquet files through a path named like a CTE of another scope", async () => {
    // The guard accepts a table name that matches any CTE name in the tree, but a CTE is only visible in its own
    // scope: outside it DuckDB resolves the same name as a file path (replacement scan) inside the warehouse.
    const glob = `${t.dataDir}/warehouse/events/app_id=appB/*/*.parquet`;
    const attempts = [
      `SELECT device_id FROM '${glob}' UNION ALL (WITH "${glob}" AS (SELECT 'x' AS device_id) SELECT device_id FROM "${glob}")`,
      `SELECT device_id FROM "${glob}" WHERE EXISTS (WITH "${glob}" AS (SELECT 1) SELECT 1)`,
    ];
    for (const sql of attempts) {
      const r = await t.post('/v1/query', { sql }, { key: t.keys.appA });
      assert.ok(!/"d4"|"d5"/.test(r.text), `appA read appB's rows: ${r.text}`);
      assert.deepEqual([r.status, r.body.error?.code], [400, 'forbidden_table'], r.text);
    }
  });

  test('the refusals changed nothing: counts are as before', async () => {
    assert.deepEqual((await t.sql('SELECT count(*) FROM events')).rows, [[5]]);
  });

  test('no key → 401; wrong key → 401; missing sql → 400 naming the field', async () => {
    const none = await t.post('/v1/query', { sql: 'SELECT 1' });
    assert.deepEqual([none.status, none.body.error.code], [401, 'missing_api_key']);
    const wrong = await t.post('/v1/query', { sql: 'SELECT 1' }, { key: 'nope_nope_nope' });
    assert.deepEqual([wrong.status, wrong.body.error.code], [401, 'invalid_api_key']);
    const missing = await t.post('/v1/query', {}, { key: t.keys.appA });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.field, 'sql');
    const blank = await t.post('/v1/query', { sql: '   ' }, { key: t.keys.appA });
    assert.deepEqual([blank.status, blank.body], [400, { error: { code: 'missing_field', message: 'is required', field: 'sql' } }]);
  });

  test('a SQL error is a 400 sql_error, not a 500', async () => {
    const r = await t.post('/v1/query', { sql: 'SELECT no_such_column FROM events' }, { key: t.keys.appA });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'sql_error');
  });
});

describe('query limits (QUERY_ROW_LIMIT=5, QUERY_TIMEOUT_MS=200)', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ QUERY_ROW_LIMIT: '5', QUERY_TIMEOUT_MS: '200' });
  });
  after(() => t?.close());

  test('row limit: 5 rows and truncated:true; a smaller request limit wins; an exact fit is not truncated', async () => {
    const r = await t.sql('SELECT range AS n FROM range(100) ORDER BY n', t.keys.appA);
    assert.deepEqual({ ...r, elapsedMs: 0 }, { columns: ['n'], types: ['BIGINT'], rows: [[0], [1], [2], [3], [4]], truncated: true, elapsedMs: 0 });
    const smaller = await t.post<QueryResult>('/v1/query', { sql: 'SELECT range FROM range(100) ORDER BY 1', limit: 2 }, { key: t.keys.appA });
    assert.deepEqual([smaller.body.rows, smaller.body.truncated], [[[0], [1]], true]);
    const larger = await t.post<QueryResult>('/v1/query', { sql: 'SELECT range FROM range(100)', limit: 50 }, { key: t.keys.appA });
    assert.deepEqual([larger.body.rows.length, larger.body.truncated], [5, true]);
    const fit = await t.sql('SELECT range FROM range(5)', t.keys.appA);
    assert.deepEqual([fit.rows.length, fit.truncated], [5, false]);
  });

  test('a long query → 408 query_timeout, and the server still answers afterwards', async () => {
    const r = await t.request('/v1/query', {
      method: 'POST',
      key: t.keys.appA,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: 'SELECT count(*) FROM range(100000000) a, range(100000000) b' }),
    });
    assert.equal(r.status, 408, r.text);
    assert.deepEqual(r.body, { error: { code: 'query_timeout', message: 'query ran longer than 200 ms', field: 'sql' } });
    const after = await t.sql('SELECT 42 AS answer', t.keys.appA);
    assert.deepEqual(after.rows, [[42]]);
    const health = await t.get('/healthz');
    assert.equal(health.status, 200);
    const ingest = await t.post('/v1/events/ingest', { event: { deviceId: 'd', appStart: {} } }, { key: t.keys.appA });
    assert.equal(ingest.status, 202);
  });
});

describe('metrics endpoints', () => {
  let t: TestNode;
  // March 2024 for app "shop", plus events outside the range and events of another app.
  const RANGE = 'from=2024-03-01&to=2024-03-31';
  before(async () => {
    t = await startTestNode({ CAUSALITY_APP_KEYS: APP_KEYS, METRICS_CACHE_MS: '0' });
    const pv = (deviceId: string, url: string, ts: string, userId?: string) => ({
      eventId: randomUUID(),
      type: 'pageview',
      deviceId,
      userId,
      url: `https://shop.example${url}`,
      timestamp: at(ts),
    });
    await sendBatch(t, t.keys.shop, [
      pv('d1', '/home', '2024-03-10T09:00:00Z', 'u1'),
      pv('d2', '/home?utm_source=x', '2024-03-10T10:00:00Z'),
      pv('d3', '/docs', '2024-03-10T23:59:59Z', 'u1'),
      { eventId: randomUUID(), deviceId: 'd2', screenView: { screenName: 'Cart' }, timestamp: at('2024-03-11T00:00:00Z') },
      pv('d4', '/home', '2024-03-11T08:00:00Z'),
      pv('d4', '/docs', '2024-03-11T08:01:00Z'),
      { eventId: randomUUID(), deviceId: 'd4', buttonTap: { buttonId: 'buy', screenName: 'Cart' }, timestamp: at('2024-03-11T08:02:00Z') },
      { eventId: randomUUID(), deviceId: 'd1', userId: 'u1', purchaseComplete: { orderId: 'o1', totalAmount: 10, currency: 'EUR' }, timestamp: at('2024-03-11T09:00:00Z') },
      { eventId: randomUUID(), deviceId: 'd6', userId: 'u6', userLogin: { success: true }, timestamp: at('2024-03-11T09:30:00Z') },
      pv('d5', '/about', '2024-03-11T10:00:00Z'),
      // outside March 2024
      pv('d9', '/home', '2023-01-05T12:00:00Z', 'u9'),
      pv('d8', '/home', '2024-04-01T00:00:00Z'),
    ]);
    await sendBatch(t, t.keys.appA, [pv('a1', '/home', '2024-03-10T12:00:00Z'), pv('a2', '/home', '2024-03-10T12:00:00Z')]);
    await t.node.flush();
  });
  after(() => t?.close());

  test('pageviews counts only view types (pageview, screenView), not taps, logins or purchases', async () => {
    const r = await t.get(`/v1/metrics/pageviews?${RANGE}`, { key: t.keys.shop });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      app_id: 'shop',
      from: '2024-03-01T00:00:00.000Z',
      to: '2024-04-01T00:00:00.000Z',
      pageviews: 7,
      by_day: [
        { day: '2024-03-10', pageviews: 3 },
        { day: '2024-03-11', pageviews: 4 },
      ],
    });
  });

  test('unique-users counts distinct coalesce(user_id, device_id)', async () => {
    const r = await t.get(`/v1/metrics/unique-users?${RANGE}`, { key: t.keys.shop });
    assert.equal(r.status, 200, r.text);
    // u1 (d1, d3), d2, d4, d5, u6 → 5 users; devices d1..d6 → 6
    assert.deepEqual(r.body, { app_id: 'shop', from: '2024-03-01T00:00:00.000Z', to: '2024-04-01T00:00:00.000Z', unique_users: 5, unique_devices: 6 });
  });

  test('top-pages ordered by views with limit', async () => {
    const r = await t.get(`/v1/metrics/top-pages?${RANGE}&limit=2`, { key: t.keys.shop });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      app_id: 'shop',
      from: '2024-03-01T00:00:00.000Z',
      to: '2024-04-01T00:00:00.000Z',
      pages: [
        { page: '/home', views: 3 },
        { page: '/docs', views: 2 },
      ],
    });
    const withVisitors = await t.get(`/v1/metrics/top-pages?${RANGE}&limit=2&visitors=1`, { key: t.keys.shop });
    assert.deepEqual(withVisitors.body.pages, [
      { page: '/home', views: 3, visitors: 3 },
      { page: '/docs', views: 2, visitors: 2 },
    ]);
    const all = await t.get(`/v1/metrics/top-pages?${RANGE}&visitors=1`, { key: t.keys.shop });
    assert.deepEqual(all.body.pages, [
      { page: '/home', views: 3, visitors: 3 },
      { page: '/docs', views: 2, visitors: 2 },
      { page: '/about', views: 1, visitors: 1 },
      { page: 'Cart', views: 1, visitors: 1 },
    ]);
  });

  test('from/to filter by event time (old and later events excluded; to is inclusive)', async () => {
    const old = await t.get('/v1/metrics/pageviews?from=2023-01-01&to=2023-01-31', { key: t.keys.shop });
    assert.deepEqual([old.body.pageviews, old.body.by_day], [1, [{ day: '2023-01-05', pageviews: 1 }]]);
    const wide = await t.get('/v1/metrics/pageviews?from=2023-01-01&to=2024-04-01', { key: t.keys.shop });
    assert.equal(wide.body.pageviews, 9);
    const oneDay = await t.get('/v1/metrics/pageviews?from=2024-03-10&to=2024-03-10', { key: t.keys.shop });
    assert.deepEqual(oneDay.body.by_day, [{ day: '2024-03-10', pageviews: 3 }]);
    const isoInstants = await t.get('/v1/metrics/pageviews?from=2024-03-10T09:30:00Z&to=2024-03-11T00:00:00Z', { key: t.keys.shop });
    assert.equal(isoInstants.body.pageviews, 2);
    const bad = await t.get('/v1/metrics/pageviews?from=last-tuesday', { key: t.keys.shop });
    assert.deepEqual([bad.status, bad.body.error.code, bad.body.error.field], [400, 'invalid_field', 'from']);
  });

  test('admin picks the app with app_id or site_id; an app key defaults to its own app', async () => {
    const viaSite = await t.get(`/v1/metrics/pageviews?site_id=shop&${RANGE}`, { key: t.keys.admin });
    const viaApp = await t.get(`/v1/metrics/pageviews?app_id=shop&${RANGE}`, { key: t.keys.admin });
    assert.equal(viaSite.body.pageviews, 7);
    assert.deepEqual(viaApp.body, viaSite.body);
    const appA = await t.get(`/v1/metrics/pageviews?${RANGE}`, { key: t.keys.appA });
    assert.deepEqual([appA.body.app_id, appA.body.pageviews], ['appA', 2]);
  });

  test('an app key asking for another app → 403 forbidden_app; no key → 401', async () => {
    for (const path of ['pageviews', 'unique-users', 'top-pages']) {
      for (const q of ['app_id=appA', 'site_id=appA']) {
        const r = await t.get(`/v1/metrics/${path}?${q}&${RANGE}`, { key: t.keys.shop });
        assert.equal(r.status, 403, `${path}?${q}`);
        assert.deepEqual(r.body, { error: { code: 'forbidden_app', message: 'this API key reads app shop only', field: 'app_id' } });
      }
      const none = await t.get(`/v1/metrics/${path}?app_id=shop&${RANGE}`);
      assert.equal(none.status, 401, path);
      assert.deepEqual(none.body, { error: { code: 'missing_api_key', message: 'send your app key in the X-API-Key header' } });
    }
  });
});

describe('compaction (COMPACT_MIN_FILES=2)', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ COMPACT_MIN_FILES: '2' });
  });
  after(() => t?.close());

  test('several flushed batches of one app/day are merged into one file; rows unchanged, each event once', async () => {
    const day = at('2024-05-01T12:00:00Z');
    const ids: string[] = [];
    for (let b = 0; b < 3; b++) {
      const batch = Array.from({ length: 3 }, (_, i) => {
        const id = randomUUID();
        ids.push(id);
        return { eventId: id, deviceId: `d${b}`, screenView: { screenName: `S${i}` }, timestamp: day + b * 1000 + i };
      });
      await sendBatch(t, t.keys.appA, batch);
      if (b === 0) await sendBatch(t, t.keys.appB, [{ eventId: randomUUID(), deviceId: 'b1', appStart: {}, timestamp: day }]);
      await t.node.flush();
    }
    const before = await t.node.warehouse.liveFiles({ appId: 'appA' });
    assert.equal(before.length, 3, `one file per flushed batch: ${before.map((f) => f.key).join(', ')}`);
    assert.ok(before.every((f) => f.kind === 'b' && f.partition === 'events/app_id=appA/date=2024-05-01'));

    const countSql = 'SELECT count(*), count(DISTINCT event_id) FROM events';
    assert.deepEqual((await t.sql(countSql, t.keys.appA)).rows, [[9, 9]]);

    assert.equal(await t.node.warehouse.compact(2), 1, 'only the appA partition has enough files');
    const afterFiles = await t.node.warehouse.liveFiles({ appId: 'appA' });
    assert.equal(afterFiles.length, 1);
    assert.equal(afterFiles[0]!.kind, 'c');
    assert.equal(afterFiles[0]!.from, Math.min(...before.map((f) => f.from)));
    assert.equal(afterFiles[0]!.to, Math.max(...before.map((f) => f.to)));
    assert.equal((await t.node.warehouse.liveFiles({ appId: 'appB' })).length, 1, 'appB partition untouched');

    assert.deepEqual((await t.sql(countSql, t.keys.appA)).rows, [[9, 9]]);
    const got = (await t.sql('SELECT event_id::VARCHAR FROM events ORDER BY 1', t.keys.appA)).rows.map((r) => r[0]);
    assert.deepEqual(got, [...ids].sort());
    assert.deepEqual((await t.sql('SELECT app_id, count(*) FROM events GROUP BY 1 ORDER BY 1')).rows, [
      ['appA', 9],
      ['appB', 1],
    ]);
    assert.equal(await t.node.warehouse.compact(2), 0, 'nothing left to compact');

    // New data after compaction is still read alongside the compacted file, once.
    const late = randomUUID();
    await sendBatch(t, t.keys.appA, [{ eventId: late, deviceId: 'd9', appStart: {}, timestamp: day }]);
    await t.node.flush();
    assert.deepEqual((await t.sql(countSql, t.keys.appA)).rows, [[10, 10]]);
    assert.deepEqual((await t.sql(`SELECT count(*) FROM events WHERE event_id = ${lit(late)}`, t.keys.appA)).rows, [[1]]);
  });
});
