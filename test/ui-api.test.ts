// The routes the web UI added, over real HTTP: saved queries (scoped per app), who-am-I with masked keys, the
// overview's endpoints (checked with SQL and with each other), rule backtests over the warehouse, and the metrics analysis
// (band, crash, ranked changes, cost; sensitivity changes the verdict). Plus the static UI routes on a temp build.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { installErrorHandler } from '../src/http/errors.js';
import { registerUiRoutes } from '../src/ui/routes.js';
import { startTestNode, type TestNode } from './helpers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function failedLogins(n: number, deviceId: string, t0: number) {
  return Array.from({ length: n }, (_, i) => ({ deviceId, userId: `victim-${i}`, type: 'userLogin', success: false, timestamp: t0 + i * 5_000 }));
}

describe('UI backend routes', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ METRICS_CACHE_MS: '0' });
    const now = Date.now();
    const views = Array.from({ length: 30 }, (_, i) => ({ deviceId: `d${i % 5}`, screenView: { screenName: i % 2 ? 'Home' : 'Cart' }, timestamp: now - i * 60_000 }));
    assert.equal((await t.post('/v1/events/batch', { events: [...views, ...failedLogins(12, 'stuffer-1', now - 2 * HOUR)] }, { key: t.keys.appA })).status, 202);
    assert.equal((await t.post('/v1/events/batch', { events: views.slice(0, 7) }, { key: t.keys.appB })).status, 202);
    await t.node.flush();
  });
  after(async () => {
    await t.close();
  });

  test('saved queries: saved per app, the same name replaces, delete; another app cannot see or delete them', async () => {
    const a = await t.post('/v1/queries/saved', { name: 'by type', sql: 'SELECT type, count(*) FROM events GROUP BY 1' }, { key: t.keys.appA });
    assert.equal(a.status, 201);
    assert.equal(a.body.appId, 'appA');
    const again = await t.post('/v1/queries/saved', { name: 'by type', sql: 'SELECT 1' }, { key: t.keys.appA });
    assert.equal(again.body.id, a.body.id);
    assert.deepEqual((await t.get('/v1/queries/saved', { key: t.keys.appA })).body.items.map((q: { sql: string }) => q.sql), ['SELECT 1']);
    assert.deepEqual((await t.get('/v1/queries/saved', { key: t.keys.appB })).body.items, []);
    assert.equal((await t.get('/v1/queries/saved', { key: t.keys.admin })).body.items.length, 1, 'the admin sees every app');
    assert.equal((await t.request(`/v1/queries/saved/${a.body.id}`, { method: 'DELETE', key: t.keys.appB })).status, 404);
    const bad = await t.post('/v1/queries/saved', { name: '', sql: 'SELECT 1' }, { key: t.keys.appA });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'name');
    assert.equal((await t.request(`/v1/queries/saved/${a.body.id}`, { method: 'DELETE', key: t.keys.appA })).status, 204);
    assert.deepEqual((await t.get('/v1/queries/saved', { key: t.keys.appA })).body.items, []);
  });

  test('apps: the admin sees every app, an app key its own; keys are masked', async () => {
    const admin = await t.get('/v1/apps', { key: t.keys.admin });
    assert.equal(admin.body.role, 'admin');
    assert.deepEqual(admin.body.apps.map((a: { appId: string }) => a.appId), ['appA', 'appB']);
    assert.ok(!admin.text.includes(t.keys.appA) && !admin.text.includes(t.keys.appB));
    const app = await t.get('/v1/apps', { key: t.keys.appB });
    assert.deepEqual([app.body.role, app.body.appId, app.body.apps.length], ['app', 'appB', 1]);
    assert.equal((await t.get('/v1/apps')).status, 401);
  });

  test('metrics/events: totals, by type and over time agree with SQL, per app', async () => {
    const r = await t.get('/v1/metrics/events?from=' + new Date(Date.now() - DAY).toISOString(), { key: t.keys.appA });
    assert.equal(r.status, 200);
    const sql = await t.sql(`SELECT type, count(*)::INT FROM events WHERE ts >= epoch_ms(${Date.parse(r.body.from)}) AND ts < epoch_ms(${Date.parse(r.body.to)}) GROUP BY 1 ORDER BY 2 DESC`, t.keys.appA);
    assert.deepEqual(r.body.by_type.map((x: { type: string; events: number }) => [x.type, x.events]), sql.rows);
    assert.equal(r.body.events, 42);
    assert.equal(r.body.bucket, 'hour');
    assert.equal(r.body.over_time.reduce((a: number, p: { events: number }) => a + p.events, 0), 42);
    const b = await t.get('/v1/metrics/events', { key: t.keys.appB });
    assert.equal(b.body.events, 7);
    assert.equal((await t.get('/v1/metrics/events?app_id=appA', { key: t.keys.appB })).status, 403);
  });

  test('metrics/overview: one answer agrees with the separate endpoints and with SQL, per app', async () => {
    const from = new Date(Date.now() - DAY).toISOString();
    const to = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 60_000).toISOString();
    const q = `from=${from}&to=${to}`;
    for (const key of [t.keys.appA, t.keys.admin]) {
      const ov = await t.get(`/v1/metrics/overview?${q}&limit=3`, { key });
      assert.equal(ov.status, 200, ov.text);
      const [ev, uu, pv, top] = await Promise.all(
        ['events', 'unique-users', 'pageviews', 'top-pages'].map((p) => t.get(`/v1/metrics/${p}?${q}&limit=3`, { key }).then((r) => r.body)),
      );
      assert.equal(ov.body.events, ev.events);
      assert.deepEqual(ov.body.by_type, ev.by_type);
      assert.deepEqual(ov.body.over_time, ev.over_time);
      assert.equal(ov.body.bucket, ev.bucket);
      assert.deepEqual([ov.body.unique_users, ov.body.unique_devices], [uu.unique_users, uu.unique_devices]);
      assert.equal(ov.body.pageviews, pv.pageviews);
      assert.deepEqual(ov.body.top_pages, top.pages);
      assert.ok(ov.body.top_pages.length > 0 && ov.body.top_pages.length <= 3);
      // The live part: per minute over the last hour of the range, exactly what SQL counts there.
      assert.equal(Date.parse(ov.body.live.to) - Date.parse(ov.body.live.from), 3_600_000);
      const sql = await t.sql(`SELECT count(*)::INT FROM events WHERE ts >= epoch_ms(${Date.parse(ov.body.live.from)}) AND ts < epoch_ms(${Date.parse(ov.body.live.to)})`, key);
      assert.equal(ov.body.live.events, sql.rows[0]![0]);
      assert.equal(ov.body.live.over_time.reduce((a: number, p: { events: number }) => a + p.events, 0), ov.body.live.events);
    }
    const a = await t.get(`/v1/metrics/overview?${q}`, { key: t.keys.appA });
    assert.equal(a.body.events, 42);
    assert.equal((await t.get('/v1/metrics/overview?app_id=appA', { key: t.keys.appB })).status, 403);
    assert.equal((await t.get('/v1/metrics/overview?from=yesterday', { key: t.keys.appA })).status, 400);
  });

  test('rules backtest: an invalid rule names its field; a valid one reports hits, entities and samples; admin only', async () => {
    const rule = (threshold: unknown) =>
      `rules:\n  - id: stuffing\n    kind: window\n    key: device\n    where: { type: userLogin, success: false }\n    window: 10m\n    aggregate: count\n    threshold: ${threshold}\n    severity: high\n    category: brute_force\n    cooldown: 1h\n`;
    const bad = await t.post('/v1/rules/backtest', { rules: rule('many'), days: 1 }, { key: t.keys.admin });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.field, /threshold/);
    const r = await t.post('/v1/rules/backtest', { rules: rule(5), days: 1 }, { key: t.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.events, 49);
    assert.deepEqual(r.body.rules, [{ id: 'stuffing', hits: 1, entities: 1 }]);
    assert.equal(r.body.samples[0].entityId, 'stuffer-1');
    const none = await t.post('/v1/rules/backtest', { rules: rule(50), days: 1 }, { key: t.keys.admin });
    assert.deepEqual(none.body.rules, [{ id: 'stuffing', hits: 0, entities: 0 }]);
    const onlyB = await t.post('/v1/rules/backtest', { rules: rule(5), days: 1, app_id: 'appB' }, { key: t.keys.admin });
    assert.deepEqual([onlyB.body.events, onlyB.body.rules[0].hits], [7, 0]);
    assert.equal((await t.post('/v1/rules/backtest', { rules: rule(5) }, { key: t.keys.appA })).status, 403);
  });

  test('analysis: the band, the crash onset, the deploy ranked first with a cost; the threshold sets how much is flagged', async () => {
    const end = Math.floor(Date.now() / HOUR) * HOUR;
    const dropAt = end - 2 * DAY;
    const series = (factor: number) => {
      const out: Array<{ timestamp: number; value: number }> = [];
      for (let ts = end - 21 * DAY, i = 0; ts < end; ts += HOUR, i++) {
        const daily = 1 + 0.4 * Math.sin(((new Date(ts).getUTCHours() - 9) / 24) * 2 * Math.PI);
        out.push({ timestamp: ts, value: 1000 * daily * (1 + ((i * 7919) % 13) / 400) * (ts >= dropAt ? factor : 1) });
      }
      return out;
    };
    const points = series(0.6);
    const changes = [
      { id: 'd-1', time: dropAt - 30 * 60_000, title: 'Deploy checkout', kind: 'deploy', service: 'checkout' },
      { id: 'c-1', time: dropAt - 2 * DAY, title: 'Docs typo', kind: 'commit' },
    ];
    const r = await t.post('/v1/analysis', { series: { points }, changes, lookback: '3d', window: '14d' }, { key: t.keys.appA });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.points.length, points.length);
    const judged = r.body.points.filter((p: { expected: number | null }) => p.expected !== null);
    assert.ok(judged.length > 100 && judged.every((p: { lower: number; upper: number; expected: number }) => p.lower <= p.expected && p.expected <= p.upper));
    assert.ok(Math.abs(Date.parse(r.body.crash.onset) - dropAt) <= 2 * HOUR, r.body.crash.onset);
    assert.equal(r.body.crash.direction, 'drop');
    assert.equal(r.body.impact.candidates[0].change.id, 'd-1');
    assert.ok(r.body.impact.candidates[0].reasons.length > 0);
    const cum = r.body.impact.effect.cumulative;
    assert.ok(cum.upper < 0 && cum.lower <= cum.estimate && cum.estimate <= cum.upper, JSON.stringify(cum));
    // The commit 2 days earlier is a (weaker) candidate within a 3-day lookback, and out of a 1-day one.
    const ids = (x: typeof r) => x.body.impact.candidates.map((c: { change: { id: string } }) => c.change.id);
    assert.deepEqual(ids(r), ['d-1', 'c-1']);
    const short = await t.post('/v1/analysis', { series: { points }, changes, lookback: '1d' }, { key: t.keys.appA });
    assert.deepEqual(ids(short), ['d-1']);
    // The threshold is the monitor's: on a 7 % dip a keen one flags points, a blunt one none.
    const dip = series(0.93);
    const flagged = async (sensitivity: number) => {
      const x = await t.post('/v1/analysis', { series: { points: dip }, changes, sensitivity }, { key: t.keys.appA });
      assert.equal(x.body.sensitivity, sensitivity);
      return x.body.points.filter((p: { anomaly: boolean }) => p.anomaly).length;
    };
    const [keen, blunt] = [await flagged(2), await flagged(20)];
    assert.ok(keen > 0 && blunt === 0, `${keen} points flagged at 2σ, ${blunt} at 20σ`);
    const few = await t.post('/v1/analysis', { series: { points: points.slice(0, 5) } }, { key: t.keys.appA });
    assert.equal(few.status, 400);
    assert.equal((await t.post('/v1/analysis', { series: 'nope' }, { key: t.keys.appA })).status, 404);
  });
});

describe('UI static routes', () => {
  let dir = '';
  const app = Fastify();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'causality-ui-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><html lang="en"><script type="module" src="/ui/assets/index-AbCdEf12.js"></script></html>');
    await writeFile(join(dir, 'assets', 'index-AbCdEf12.js'), `console.log(${JSON.stringify('x'.repeat(2000))});`);
    installErrorHandler(app);
    app.get('/', async () => ({ name: 'causality' }));
    registerUiRoutes(app, `${dir}/`);
    await app.ready();
  });
  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('index, client routes, hashed assets, 404s, traversal, and the root redirect for browsers only', async () => {
    const index = await app.inject({ url: '/ui/' });
    assert.equal(index.statusCode, 200);
    assert.match(index.headers['content-type'] as string, /^text\/html/);
    assert.equal(index.headers['cache-control'], 'no-cache');
    const route = await app.inject({ url: '/ui/anomalies/123' });
    assert.equal(route.body, index.body);
    const js = await app.inject({ url: '/ui/assets/index-AbCdEf12.js', headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^text\/javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.equal((await app.inject({ url: '/ui/assets/index-AbCdEf12.js', headers: { 'if-none-match': js.headers.etag as string } })).statusCode, 304);
    assert.equal((await app.inject({ url: '/ui/assets/gone-12345678.js' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/ui/%2e%2e/%2e%2e/etc/passwd.txt' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/ui' })).headers.location, '/ui/');
    const browser = await app.inject({ url: '/', headers: { accept: 'text/html,*/*' } });
    assert.deepEqual([browser.statusCode, browser.headers.location], [302, '/ui/']);
    const client = await app.inject({ url: '/', headers: { accept: 'application/json' } });
    assert.deepEqual(client.json(), { name: 'causality' });
  });
});
