// Ingest through real HTTP against a running node: seed bodies, batch results, idempotency, errors, edge concerns.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { signBody } from '../src/ingest/edge.js';
import type { QueryResult } from '../src/query/query-service.js';
import { filesContaining, lit, startTestNode, TEST_KEYS, UUID_RE, type TestNode } from './helpers.js';

const APP_KEYS = `appA:${TEST_KEYS.appA},appB:${TEST_KEYS.appB},my-app:keyMyApp_12345678,site-1:dev-site-1-key`;

/** Query result rows as objects keyed by column name. */
const objects = (r: QueryResult) => r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));

/** How many rows each event id has in the warehouse (ids absent from the warehouse are left out). */
async function countsById(t: TestNode, ids: string[]): Promise<Record<string, number>> {
  const r = await t.sql(`SELECT event_id::VARCHAR AS id, count(*) AS n FROM events WHERE event_id::VARCHAR IN (${ids.map(lit).join(', ')}) GROUP BY 1`);
  return Object.fromEntries(r.rows.map(([id, n]) => [id as string, n as number]));
}

const screenView = (eventId: string, deviceId = 'dev-1', extra: Record<string, unknown> = {}) => ({
  eventId,
  deviceId,
  screenView: { screenName: 'Home' },
  ...extra,
});

/** Value of one Prometheus sample line (0 when absent). */
function promValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

describe('ingest over HTTP', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({
      CAUSALITY_APP_KEYS: APP_KEYS,
      MAX_BODY_BYTES: '8192',
      MAX_BATCH_EVENTS: '20',
      CORS_ALLOW_ORIGINS: 'https://a.example',
    });
  });
  after(() => t?.close());

  describe('seed bodies, verbatim', () => {
    test("seed 000 single event curl body → 202, stored", async () => {
      const body = `{
"event": {
"appId": "my-app",
"deviceId": "device-001",
"screenView": {"screenName": "HomeScreen"}
}
}`;
      const r = await t.post('/v1/events/ingest', body, { key: t.keys['my-app'] });
      assert.equal(r.status, 202, r.text);
      assert.match(r.body.eventId, UUID_RE);
      assert.deepEqual(r.body, { status: 'accepted', eventId: r.body.eventId });
      await t.node.flush();
      const rows = objects(await t.sql(`SELECT app_id, device_id, type, screen_name FROM events WHERE event_id = ${lit(r.body.eventId)}`));
      assert.deepEqual(rows, [{ app_id: 'my-app', device_id: 'device-001', type: 'screenView', screen_name: 'HomeScreen' }]);
    });

    test('seed 000 batch curl body → 202 with per-event results, both stored', async () => {
      const body = `{
"events": [
{"appId": "my-app", "deviceId": "d1", "screenView": {"screenName": "Home"}},
{"appId": "my-app", "deviceId": "d1", "buttonTap": {"buttonId": "login", "screenName": "Home"}}
]
}`;
      const r = await t.post('/v1/events/batch', body, { key: t.keys['my-app'] });
      assert.equal(r.status, 202, r.text);
      const ids = r.body.results.map((x: { eventId: string }) => x.eventId);
      for (const id of ids) assert.match(id, UUID_RE);
      assert.deepEqual(r.body, {
        accepted: 2,
        duplicate: 0,
        rejected: 0,
        results: [
          { status: 'accepted', eventId: ids[0] },
          { status: 'accepted', eventId: ids[1] },
        ],
      });
      await t.node.flush();
      const rows = objects(
        await t.sql(`SELECT event_id::VARCHAR AS id, device_id, type, screen_name, button_id FROM events WHERE event_id::VARCHAR IN (${ids.map(lit).join(',')}) ORDER BY type DESC`),
      );
      assert.deepEqual(rows, [
        { id: ids[0], device_id: 'd1', type: 'screenView', screen_name: 'Home', button_id: null },
        { id: ids[1], device_id: 'd1', type: 'buttonTap', screen_name: 'Home', button_id: 'login' },
      ]);
    });

    test('seed 003 /v1/collect curl body (X-TA-API-Key) → 202; row is a pageview with path, ids, ts and props', async () => {
      const body = `{
"site_id": "site-1",
"event_name": "pageview",
"url": "https://example.com/docs",
"referrer": "https://search.example",
"user_id": "user-123",
"session_id": "sess-456",
"ts": 1700000000000,
"props": {"plan": "pro"}
}`;
      const r = await t.post('/v1/collect', body, { headers: { 'X-TA-API-Key': 'dev-site-1-key' } });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.body, { status: 'accepted', eventId: r.body.eventId });
      await t.node.flush();
      const [row] = objects(
        await t.sql(
          `SELECT app_id, type, url, path, referrer, user_id, session_id, epoch_ms(ts) AS ts_ms, props::VARCHAR AS props, utm_source, device_id
           FROM events WHERE event_id = ${lit(r.body.eventId)}`,
        ),
      );
      assert.ok(row, 'the collected event is in the warehouse');
      assert.match(String(row.device_id), /^anon-[0-9a-f]{16}$/);
      assert.deepEqual(
        { ...row, props: JSON.parse(String(row.props)), device_id: 'anon' },
        {
          app_id: 'site-1',
          type: 'pageview',
          url: 'https://example.com/docs',
          path: '/docs',
          referrer: 'https://search.example',
          user_id: 'user-123',
          session_id: 'sess-456',
          ts_ms: 1700000000000,
          props: { plan: 'pro' },
          utm_source: null,
          device_id: 'anon',
        },
      );
    });

    test('seed 003 collect body with UTM parameters in the url → utm columns', async () => {
      const body = {
        site_id: 'site-1',
        event_name: 'pageview',
        url: 'https://example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=launch',
        referrer: 'https://search.example',
        user_id: 'user-123',
        session_id: 'sess-456',
        ts: 1700000000000,
        props: { plan: 'pro' },
      };
      const r = await t.post('/v1/collect', body, { headers: { 'X-TA-API-Key': 'dev-site-1-key' } });
      assert.equal(r.status, 202, r.text);
      await t.node.flush();
      const rows = objects(
        await t.sql(
          `SELECT type, path, utm_source, utm_medium, utm_campaign, epoch_ms(ts) AS ts_ms FROM events WHERE event_id = ${lit(r.body.eventId)}`,
          t.keys['site-1'],
        ),
      );
      assert.deepEqual(rows, [
        { type: 'pageview', path: '/pricing', utm_source: 'newsletter', utm_medium: 'email', utm_campaign: 'launch', ts_ms: 1700000000000 },
      ]);
    });
  });

  describe('envelope through HTTP', () => {
    test('unknown fields (top level, inside the kind, in properties, context extras) reach the props column', async () => {
      const nested = randomUUID();
      const flat = randomUUID();
      const r = await t.post(
        '/v1/events/batch',
        {
          events: [
            {
              eventId: nested,
              deviceId: 'props-dev',
              experiment: 'b',
              purchaseComplete: { orderId: 'o-1', totalAmount: 12.5, currency: 'eur', coupon: 'SPRING' },
              context: { appVersion: '3.0.0', carrier: 'Vodafone' },
            },
            { eventId: flat, type: 'purchaseComplete', deviceId: 'props-dev', orderId: 'o-2', totalAmount: 7, channel: 'web', properties: { coupon: 'FALL' } },
          ],
        },
        { key: t.keys.appA },
      );
      assert.equal(r.body.accepted, 2, r.text);
      await t.node.flush();
      const rows = objects(
        await t.sql(`SELECT order_id, price, currency, app_version, props::VARCHAR AS props FROM events WHERE device_id = 'props-dev' ORDER BY order_id`),
      ).map((row) => ({ ...row, props: JSON.parse(String(row.props)) }));
      assert.deepEqual(rows, [
        { order_id: 'o-1', price: 12.5, currency: 'EUR', app_version: '3.0.0', props: { experiment: 'b', coupon: 'SPRING', 'context.carrier': 'Vodafone' } },
        { order_id: 'o-2', price: 7, currency: null, app_version: null, props: { channel: 'web', coupon: 'FALL' } },
      ]);
    });

    test('user-agent fields: an iPhone is iOS/mobile, an Android phone is Android (not macOS/Linux)', async () => {
      const iphone = randomUUID();
      const android = randomUUID();
      await t.post('/v1/events/ingest', { event: screenView(iphone, 'ua-dev') }, {
        key: t.keys.appA,
        headers: {
          'user-agent':
            'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1',
        },
      });
      await t.post('/v1/events/ingest', { event: screenView(android, 'ua-dev') }, {
        key: t.keys.appA,
        headers: { 'user-agent': 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36' },
      });
      await t.node.flush();
      const rows = objects(
        await t.sql(
          `SELECT event_id::VARCHAR AS id, os, os_version, device_type, browser FROM events WHERE event_id::VARCHAR IN (${lit(iphone)}, ${lit(android)})`,
        ),
      );
      const byId = Object.fromEntries(rows.map(({ id, ...rest }) => [id, rest]));
      assert.deepEqual(byId[iphone], { os: 'iOS', os_version: '17.2', device_type: 'mobile', browser: 'Mobile Safari' });
      assert.deepEqual(byId[android], { os: 'Android', os_version: '14', device_type: 'mobile', browser: 'Chrome' });
    });
  });

  describe('batch per-event results', () => {
    test('mix of valid, invalid and other-app events → 202 with counts and per-index results; only valid ones stored', async () => {
      const [u0, u1, u2, u4] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const r = await t.post(
        '/v1/events/batch',
        {
          events: [
            screenView(u0, 'dev-batch'),
            { eventId: u1, deviceId: 'dev-batch', productView: { productId: 'p1', currency: 'dollars' } },
            { eventId: u2, appId: 'appB', deviceId: 'dev-batch', screenView: { screenName: 'Home' } },
            { type: 'buttonTap', buttonId: 'b' },
            { eventId: u4, type: 'buttonTap', deviceId: 'dev-batch', buttonId: 'buy' },
          ],
        },
        { key: t.keys.appA },
      );
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.body, {
        accepted: 2,
        duplicate: 0,
        rejected: 3,
        results: [
          { status: 'accepted', eventId: u0 },
          { index: 1, status: 'rejected', error: { code: 'invalid_field', field: 'productView.currency', message: 'must be a 3-letter ISO 4217 code' } },
          { index: 2, status: 'rejected', error: { code: 'forbidden_app', field: 'appId', message: 'this API key writes to app appA only' } },
          { index: 3, status: 'rejected', error: { code: 'missing_field', field: 'deviceId', message: 'is required' } },
          { status: 'accepted', eventId: u4 },
        ],
      });
      await t.node.flush();
      assert.deepEqual(await countsById(t, [u0, u1, u2, u4]), { [u0]: 1, [u4]: 1 });
    });

    test('all events invalid → 400 with the per-event results', async () => {
      const r = await t.post('/v1/events/batch', { events: [{ deviceId: 'd' }, { appId: 'appB', deviceId: 'd', appStart: {} }] }, { key: t.keys.appA });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.accepted, 0);
      assert.equal(r.body.duplicate, 0);
      assert.equal(r.body.rejected, 2);
      assert.deepEqual(
        r.body.results.map((x: { index: number; error: { code: string; field: string } }) => [x.index, x.error.code, x.error.field]),
        [
          [0, 'missing_field', 'type'],
          [1, 'forbidden_app', 'appId'],
        ],
      );
    });

    test('single event for another app → 403 forbidden_app; invalid single event → 400 naming the field', async () => {
      const forbidden = await t.post('/v1/events/ingest', { event: { appId: 'appB', deviceId: 'd', appStart: {} } }, { key: t.keys.appA });
      assert.equal(forbidden.status, 403);
      assert.deepEqual(forbidden.body, { error: { code: 'forbidden_app', message: 'this API key writes to app appA only', field: 'appId' } });
      const invalid = await t.post('/v1/events/ingest', { event: { deviceId: 'd', appStart: {}, timestamp: 1700000000 } }, { key: t.keys.appA });
      assert.equal(invalid.status, 400);
      assert.deepEqual(invalid.body, {
        error: { code: 'invalid_field', message: 'is before 2000-01-01: epoch milliseconds expected (seconds given?)', field: 'timestamp' },
      });
    });

    test('the admin key writes any app named in the event', async () => {
      const id = randomUUID();
      const r = await t.post('/v1/events/ingest', { event: { ...screenView(id), appId: 'appB' } }, { key: t.keys.admin });
      assert.equal(r.status, 202, r.text);
      await t.node.flush();
      const rows = objects(await t.sql(`SELECT app_id FROM events WHERE event_id = ${lit(id)}`));
      assert.deepEqual(rows, [{ app_id: 'appB' }]);
    });
  });

  describe('the admin key across apps', () => {
    test('one batch for several apps: each event lands in its own app; a rejection and a repeat are answered in place', async () => {
      const [a, b] = [randomUUID(), randomUUID()];
      const events = [{ ...screenView(a), appId: 'appA' }, screenView(randomUUID()), { ...screenView(b), appId: 'appB' }, { ...screenView(a), appId: 'appA' }];
      const r = await t.post('/v1/events/batch', { events }, { key: t.keys.admin });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(
        r.body.results.map((x: { status: string; eventId?: string; error?: { field: string } }) => [x.status, x.eventId ?? x.error!.field]),
        [['accepted', a], ['rejected', 'appId'], ['accepted', b], ['duplicate', a]],
      );
      assert.deepEqual([r.body.accepted, r.body.rejected, r.body.duplicate], [2, 1, 1]);
      await t.node.flush();
      const rows = objects(await t.sql(`SELECT event_id::VARCHAR AS id, app_id FROM events WHERE event_id::VARCHAR IN (${lit(a)}, ${lit(b)}) ORDER BY app_id`));
      assert.deepEqual(rows, [{ id: a, app_id: 'appA' }, { id: b, app_id: 'appB' }]);
    });
  });

  describe('idempotency on event id', () => {
    test('same eventId twice in sequence → accepted then duplicate; one row', async () => {
      const id = randomUUID();
      const a = await t.post('/v1/events/ingest', { event: screenView(id) }, { key: t.keys.appA });
      const b = await t.post('/v1/events/ingest', { event: screenView(id, 'dev-1', { userId: 'changed' }) }, { key: t.keys.appA });
      assert.deepEqual([a.status, a.body], [202, { status: 'accepted', eventId: id }]);
      assert.deepEqual([b.status, b.body], [202, { status: 'duplicate', eventId: id }]);
      await t.node.flush();
      assert.deepEqual(await countsById(t, [id]), { [id]: 1 });
    });

    test('same eventId in concurrent requests → exactly one accepted; one row', async () => {
      const id = randomUUID();
      const rs = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          i % 2 ? t.post('/v1/events/batch', { events: [screenView(id)] }, { key: t.keys.appA }) : t.post('/v1/events/ingest', { event: screenView(id) }, { key: t.keys.appA }),
        ),
      );
      const statuses = rs.map((r) => {
        assert.equal(r.status, 202, r.text);
        return r.body.status ?? r.body.results[0].status;
      });
      assert.deepEqual(statuses.sort(), ['accepted', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
      await t.node.flush();
      assert.deepEqual(await countsById(t, [id]), { [id]: 1 });
    });

    test('same eventId twice inside one batch → accepted + duplicate; one row', async () => {
      const id = randomUUID();
      const r = await t.post('/v1/events/batch', { events: [screenView(id), screenView(id, 'dev-2')] }, { key: t.keys.appA });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.body, {
        accepted: 1,
        duplicate: 1,
        rejected: 0,
        results: [
          { status: 'accepted', eventId: id },
          { status: 'duplicate', eventId: id },
        ],
      });
      await t.node.flush();
      assert.deepEqual(await countsById(t, [id]), { [id]: 1 });
    });

    test('non-UUID client id: same UUIDv5 both times, second is duplicate; original id kept in props', async () => {
      const clientId = `client-${randomUUID()}`;
      const a = await t.post('/v1/events/ingest', { event: screenView(clientId) }, { key: t.keys.appA });
      const b = await t.post('/v1/events/ingest', { event: screenView(clientId) }, { key: t.keys.appA });
      assert.equal(a.status, 202);
      assert.match(a.body.eventId, UUID_RE);
      assert.deepEqual(b.body, { status: 'duplicate', eventId: a.body.eventId });
      await t.node.flush();
      const rows = (await t.sql(`SELECT props::VARCHAR FROM events WHERE event_id = ${lit(a.body.eventId)}`)).rows;
      assert.equal(rows.length, 1);
      assert.equal(JSON.parse(String(rows[0]![0])).$client_event_id, clientId);
    });
  });

  describe('errors are JSON {error:{code,message,field?}}, never 500', () => {
    const valid = () => ({ event: screenView(randomUUID()) });

    test('missing key → 401 missing_api_key', async () => {
      const r = await t.post('/v1/events/ingest', valid());
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, { error: { code: 'missing_api_key', message: 'send your app key in the X-API-Key header' } });
    });

    test('wrong key → 401 invalid_api_key', async () => {
      const r = await t.post('/v1/events/batch', { events: [screenView(randomUUID())] }, { key: 'not_a_key_123456' });
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, { error: { code: 'invalid_api_key', message: 'unknown API key' } });
    });

    test('X-TA-API-Key and Authorization: Bearer are accepted too', async () => {
      const a = await t.post('/v1/events/ingest', valid(), { headers: { 'x-ta-api-key': t.keys.appA } });
      const b = await t.post('/v1/events/ingest', valid(), { headers: { authorization: `Bearer ${t.keys.appA}` } });
      assert.deepEqual([a.status, b.status], [202, 202]);
    });

    test('Content-Type text/xml → 415', async () => {
      const r = await t.post('/v1/events/ingest', '<event/>', { key: t.keys.appA, headers: { 'content-type': 'text/xml' } });
      assert.equal(r.status, 415);
      assert.deepEqual(r.body, { error: { code: 'unsupported_media_type', message: 'send Content-Type: application/json' } });
    });

    test('body over MAX_BODY_BYTES → 413 body_too_large', async () => {
      const body = JSON.stringify({ event: screenView(randomUUID(), 'd', { padding: 'x'.repeat(9000) }) });
      const r = await t.post('/v1/events/ingest', body, { key: t.keys.appA });
      assert.equal(r.status, 413);
      assert.deepEqual(r.body, { error: { code: 'body_too_large', message: 'request body is larger than the limit' } });
    });

    test('more than MAX_BATCH_EVENTS events → 413 too_many_events (batch and collect)', async () => {
      const events = Array.from({ length: 21 }, () => screenView(randomUUID()));
      const r = await t.post('/v1/events/batch', { events }, { key: t.keys.appA });
      assert.equal(r.status, 413);
      assert.deepEqual(r.body, { error: { code: 'too_many_events', message: 'at most 20 events per batch', field: 'events' } });
      const c = await t.post('/v1/collect', Array.from({ length: 21 }, () => ({ event_name: 'pageview', url: '/x' })), { key: t.keys.appA });
      assert.equal(c.status, 413);
      assert.equal(c.body.error.code, 'too_many_events');
      const exactly = await t.post('/v1/events/batch', { events: events.slice(0, 20) }, { key: t.keys.appA });
      assert.equal(exactly.status, 202);
      assert.equal(exactly.body.accepted, 20);
    });

    test('invalid JSON → 400 invalid_json', async () => {
      const r = await t.post('/v1/events/ingest', '{"event": {"deviceId": ', { key: t.keys.appA });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'invalid_json');
      assert.match(r.body.error.message, /^body is not valid JSON/);
      assert.deepEqual(Object.keys(r.body), ['error']);
    });

    test('unknown route → 404 not_found', async () => {
      const r = await t.get('/v1/nope', { key: t.keys.appA });
      assert.equal(r.status, 404);
      assert.deepEqual(r.body, { error: { code: 'not_found', message: 'no route GET /v1/nope' } });
    });

    test('odd bodies on every ingest route: 4xx JSON errors or results, never 5xx', async () => {
      const bodies = [
        '',
        'null',
        '[]',
        '42',
        '"text"',
        'true',
        '{}',
        '{"event":null}',
        '{"event":[]}',
        '{"event":"x"}',
        '{"events":{}}',
        '{"events":[]}',
        '{"events":[null,1,"x",[]]}',
        '{"event":{"deviceId":{"a":1},"type":"x"}}',
        '{"event":{"deviceId":"d","type":"\\u0000bad"}}',
        '{"event":{"deviceId":"d","type":"x","timestamp":{"$date":1}}}',
        '{"event":{"deviceId":"d","type":"x","context":"not an object"}}',
        '{"event":{"deviceId":"d","type":"x","properties":[1,2]}}',
        '{"event":{"deviceId":"d","screenView":{"screenName":"a"},"buttonTap":{"buttonId":"b"}}}',
        '{"event":{"deviceId":"d","type":"x","__proto__":{"polluted":true}}}',
        '{"event":{"deviceId":"d","type":"x","constructor":{"prototype":{"p":1}}}}',
        JSON.stringify({ event: { deviceId: 'd', type: 'x', deep: JSON.parse('['.repeat(500) + ']'.repeat(500)) } }),
        '{"site_id":"appA","event_name":42}',
        '{"site_id":null,"url":{"a":1}}',
        '\u00ff\u00fe',
      ];
      for (const path of ['/v1/events/ingest', '/v1/events/batch', '/v1/collect']) {
        for (const body of bodies) {
          const r = await t.post(path, body, { key: t.keys.appA });
          assert.ok(r.status < 500, `${path} ${body.slice(0, 60)} → ${r.status} ${r.text}`);
          assert.ok(typeof r.body === 'object' && r.body !== null, `${path} ${body.slice(0, 60)} → JSON body, got ${r.text}`);
          if (r.status >= 400 && !('results' in r.body)) {
            assert.equal(typeof r.body.error?.code, 'string', `${path} ${body.slice(0, 60)} → error code`);
            assert.equal(typeof r.body.error?.message, 'string', `${path} ${body.slice(0, 60)} → error message`);
          }
        }
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    });
  });

  describe('bots', () => {
    test('Googlebot → 202 with dropped count, nothing stored, visible in /metrics; curl and okhttp are accepted', async () => {
      const googlebot = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
      const single = await t.post('/v1/events/ingest', { event: screenView(randomUUID(), 'bot-device') }, { key: t.keys.appA, headers: { 'user-agent': googlebot } });
      assert.equal(single.status, 202);
      assert.deepEqual(single.body, { accepted: 0, duplicate: 0, rejected: 0, dropped: 1, reason: 'bot' });
      const batch = await t.post(
        '/v1/events/batch',
        { events: [screenView(randomUUID(), 'bot-device'), screenView(randomUUID(), 'bot-device'), screenView(randomUUID(), 'bot-device')] },
        { key: t.keys.appA, headers: { 'user-agent': googlebot } },
      );
      assert.deepEqual([batch.status, batch.body], [202, { accepted: 0, duplicate: 0, rejected: 0, dropped: 3, reason: 'bot' }]);
      const collect = await t.post('/v1/collect', { event_name: 'pageview', url: '/x', device_id: 'bot-device' }, { key: t.keys.appA, headers: { 'user-agent': googlebot } });
      assert.deepEqual([collect.status, collect.body], [202, { accepted: 0, duplicate: 0, rejected: 0, dropped: 1, reason: 'bot' }]);

      const curlId = randomUUID();
      const okId = randomUUID();
      const curl = await t.post('/v1/events/ingest', { event: screenView(curlId, 'human-device') }, { key: t.keys.appA, headers: { 'user-agent': 'curl/8.4.0' } });
      const ok = await t.post('/v1/events/ingest', { event: screenView(okId, 'human-device') }, { key: t.keys.appA, headers: { 'user-agent': 'okhttp/4.12.0' } });
      assert.deepEqual([curl.status, curl.body], [202, { status: 'accepted', eventId: curlId }]);
      assert.deepEqual([ok.status, ok.body], [202, { status: 'accepted', eventId: okId }]);

      await t.node.flush(); // the sink is past the human events, so bot events would be there by now
      const counts = objects(await t.sql(`SELECT device_id, count(*) AS n FROM events WHERE device_id IN ('bot-device', 'human-device') GROUP BY 1`));
      assert.deepEqual(counts, [{ device_id: 'human-device', n: 2 }]);

      const metrics = await t.get('/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(promValue(metrics.text, 'causality_events_dropped_total{reason="bot"}'), 5);
    });
  });

  describe('privacy: the raw IP is never stored', () => {
    test('127.0.0.1 is in no warehouse column (props included) and nowhere in <dataDir>; untrusted X-Forwarded-For is ignored', async () => {
      const [plain, spoofed, spoofed2] = [randomUUID(), randomUUID(), randomUUID()];
      await t.post('/v1/events/ingest', { event: screenView(plain, 'ip-device') }, { key: t.keys.appA });
      await t.post('/v1/events/ingest', { event: screenView(spoofed, 'ip-device') }, { key: t.keys.appA, headers: { 'x-forwarded-for': '203.0.113.9' } });
      await t.post('/v1/collect', { event_name: 'pageview', url: '/ip', anonymous_id: 'ip-device' }, { key: t.keys.appA, headers: { 'x-forwarded-for': '198.51.100.5' } });
      await t.post('/v1/events/ingest', { event: screenView(spoofed2, 'ip-device') }, { key: t.keys.appA, headers: { 'x-forwarded-for': '198.51.100.5' } });
      await t.node.flush();

      const hashes = objects(
        await t.sql(`SELECT event_id::VARCHAR AS id, ip_hash FROM events WHERE event_id::VARCHAR IN (${[plain, spoofed, spoofed2].map(lit).join(',')})`),
      );
      assert.equal(hashes.length, 3);
      const byId = Object.fromEntries(hashes.map((h) => [h.id, h.ip_hash]));
      assert.match(String(byId[plain]), /^[0-9a-f]{16,64}$/);
      assert.equal(byId[spoofed], byId[plain], 'X-Forwarded-For from an untrusted peer does not change ip_hash');
      assert.equal(byId[spoofed2], byId[plain]);

      const all = await t.sql('SELECT * FROM events');
      const dump = JSON.stringify(all.rows);
      assert.ok(dump.includes('ip-device'), 'positive control: the dump holds the events');
      for (const ip of ['127.0.0.1', '203.0.113.9', '198.51.100.5']) assert.ok(!dump.includes(ip), `${ip} found in the warehouse`);

      const logDir = join(t.dataDir, 'log');
      assert.ok((await filesContaining(logDir, 'ip-device')).length > 0, 'positive control: the log files hold the events');
      for (const ip of ['127.0.0.1', '203.0.113.9', '198.51.100.5']) {
        assert.deepEqual(await filesContaining(t.dataDir, ip), [], `${ip} found in files under the data dir`);
      }
    });
  });

  describe('browsers', () => {
    test('CORS: preflight from an allowed origin gets access-control-allow-origin, another origin does not', async () => {
      const preflight = (origin: string) =>
        t.request('/v1/events/batch', {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-api-key' },
        });
      const ok = await preflight('https://a.example');
      assert.ok(ok.status === 204 || ok.status === 200, `status ${ok.status}`);
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://a.example');
      assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-api-key/);
      assert.match(ok.headers.get('access-control-allow-methods') ?? '', /POST/);
      const evil = await preflight('https://evil.example');
      assert.equal(evil.headers.get('access-control-allow-origin'), null);
    });

    test('text/plain JSON body (no-preflight browser form) is accepted, with CORS header for the allowed origin', async () => {
      const id = randomUUID();
      const r = await t.post('/v1/events/ingest', JSON.stringify({ event: screenView(id) }), {
        key: t.keys.appA,
        headers: { 'content-type': 'text/plain;charset=UTF-8', origin: 'https://a.example' },
      });
      assert.deepEqual([r.status, r.body], [202, { status: 'accepted', eventId: id }]);
      assert.equal(r.headers.get('access-control-allow-origin'), 'https://a.example');
      const c = await t.post('/v1/collect', JSON.stringify({ event_name: 'pageview', url: 'https://x.example/beacon' }), {
        key: t.keys.appA,
        headers: { 'content-type': 'text/plain' },
      });
      assert.equal(c.status, 202, c.text);
    });
  });
});

describe('rate limit (RATE_LIMIT_PER_MINUTE=3)', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ RATE_LIMIT_PER_MINUTE: '3' });
  });
  after(() => t?.close());

  test('the 4th request of a key in a minute → 429 rate_limited; another key is unaffected', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await t.post('/v1/events/ingest', { event: screenView(randomUUID()) }, { key: t.keys.appA });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [202, 202, 202, 429]);
    assert.equal(last!.body.error.code, 'rate_limited');
    assert.match(last!.body.error.message, /more than 3 requests per minute/);
    assert.deepEqual(Object.keys(last!.body.error).sort(), ['code', 'message']);
    const other = await t.post('/v1/events/ingest', { event: screenView(randomUUID()) }, { key: t.keys.appB });
    assert.equal(other.status, 202);
  });
});

describe('HMAC signatures (CAUSALITY_HMAC_SECRETS=appA:…)', () => {
  const SECRET = 'secret_12345678';
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ CAUSALITY_HMAC_SECRETS: `appA:${SECRET}` });
  });
  after(() => t?.close());

  const signedHeaders = (body: string, ts: string, secret = SECRET) => ({
    'x-causality-timestamp': ts,
    'x-causality-signature': signBody(secret, ts, body),
  });
  const nowSeconds = () => String(Math.floor(Date.now() / 1000));

  test('unsigned → 401 signature_required', async () => {
    const r = await t.post('/v1/events/ingest', { event: screenView(randomUUID()) }, { key: t.keys.appA });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'signature_required');
  });

  test('valid signature → 202 and stored', async () => {
    const id = randomUUID();
    const body = JSON.stringify({ event: screenView(id) });
    const r = await t.post('/v1/events/ingest', body, { key: t.keys.appA, headers: signedHeaders(body, nowSeconds()) });
    assert.deepEqual([r.status, r.body], [202, { status: 'accepted', eventId: id }]);
    const batchBody = JSON.stringify({ events: [screenView(randomUUID())] });
    const b = await t.post('/v1/events/batch', batchBody, { key: t.keys.appA, headers: signedHeaders(batchBody, nowSeconds()) });
    assert.equal(b.status, 202, b.text);
    await t.node.flush();
    assert.equal((await t.sql(`SELECT count(*) FROM events WHERE event_id = ${lit(id)}`)).rows[0]![0], 1);
  });

  test('body tampered after signing → 401 invalid_signature', async () => {
    const body = JSON.stringify({ event: screenView(randomUUID()) });
    const tampered = body.replace('Home', 'Evil');
    assert.notEqual(tampered, body);
    const r = await t.post('/v1/events/ingest', tampered, { key: t.keys.appA, headers: signedHeaders(body, nowSeconds()) });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: { code: 'invalid_signature', message: 'signature does not match the body', field: 'X-Causality-Signature' } });
  });

  test('wrong secret → 401 invalid_signature', async () => {
    const body = JSON.stringify({ event: screenView(randomUUID()) });
    const r = await t.post('/v1/events/ingest', body, { key: t.keys.appA, headers: signedHeaders(body, nowSeconds(), 'other_secret_123') });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'invalid_signature');
  });

  test('timestamp 10 minutes old (validly signed) → 401 stale_signature', async () => {
    const body = JSON.stringify({ event: screenView(randomUUID()) });
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const r = await t.post('/v1/events/ingest', body, { key: t.keys.appA, headers: signedHeaders(body, old) });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'stale_signature');
    assert.equal(r.body.error.field, 'X-Causality-Timestamp');
  });

  test('an app without a secret needs no signature', async () => {
    const r = await t.post('/v1/events/ingest', { event: screenView(randomUUID()) }, { key: t.keys.appB });
    assert.equal(r.status, 202, r.text);
  });
});

describe('trusted proxy (TRUSTED_PROXIES=127.0.0.1)', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ TRUSTED_PROXIES: '127.0.0.1' }, { logToFile: true });
  });
  after(() => t?.close());

  test('X-Forwarded-For from a trusted proxy decides ip_hash; the forwarded IP is stored nowhere', async () => {
    const ids = { direct: randomUUID(), fwdA1: randomUUID(), fwdA2: randomUUID(), fwdB: randomUUID() };
    await t.post('/v1/events/ingest', { event: screenView(ids.direct) }, { key: t.keys.appA });
    await t.post('/v1/events/ingest', { event: screenView(ids.fwdA1) }, { key: t.keys.appA, headers: { 'x-forwarded-for': '203.0.113.77' } });
    await t.post('/v1/events/ingest', { event: screenView(ids.fwdA2) }, { key: t.keys.appA, headers: { 'x-forwarded-for': '203.0.113.77' } });
    await t.post('/v1/events/ingest', { event: screenView(ids.fwdB) }, { key: t.keys.appA, headers: { 'x-forwarded-for': '198.51.100.23' } });
    await t.node.flush();
    const rows = objects(await t.sql('SELECT event_id::VARCHAR AS id, ip_hash FROM events'));
    const h = Object.fromEntries(rows.map((r) => [r.id, r.ip_hash]));
    assert.equal(Object.keys(h).length, 4);
    assert.equal(h[ids.fwdA1], h[ids.fwdA2], 'same forwarded client → same hash');
    assert.notEqual(h[ids.fwdA1], h[ids.direct], 'forwarded client differs from the proxy');
    assert.notEqual(h[ids.fwdA1], h[ids.fwdB]);
    assert.notEqual(h[ids.fwdB], h[ids.direct]);

    const dump = JSON.stringify((await t.sql('SELECT * FROM events')).rows);
    assert.ok(!dump.includes('203.0.113.77') && !dump.includes('198.51.100.23'), 'forwarded IP in the warehouse');
    await t.stop(); // flushes the node log too
    assert.ok((await filesContaining(t.dataDir, 'causality is up')).length > 0, 'positive control: the node log is on disk');
    assert.deepEqual(await filesContaining(t.dataDir, '203.0.113.77'), []);
    assert.deepEqual(await filesContaining(t.dataDir, '198.51.100.23'), []);
  });
});

describe('restart', () => {
  test('rows survive a restart exactly once; re-sending acked ids after restart is answered duplicate', async () => {
    const first = await startTestNode();
    let second: TestNode | undefined;
    try {
      const flushed = [randomUUID(), randomUUID(), randomUUID()];
      const unflushed = [randomUUID(), randomUUID()];
      const r1 = await first.post('/v1/events/batch', { events: flushed.map((id) => screenView(id)) }, { key: first.keys.appA });
      assert.equal(r1.body.accepted, 3);
      await first.node.flush();
      const r2 = await first.post('/v1/events/batch', { events: unflushed.map((id) => screenView(id, 'dev-2')) }, { key: first.keys.appB });
      assert.equal(r2.body.accepted, 2);
      await first.stop(); // graceful: the sink flushes what is on the bus

      second = await startTestNode({}, { dataDir: first.dataDir });
      const all = [...flushed, ...unflushed];
      assert.deepEqual(await countsById(second, all), Object.fromEntries(all.map((id) => [id, 1])));

      const again = await second.post('/v1/events/batch', { events: flushed.map((id) => screenView(id)) }, { key: second.keys.appA });
      assert.deepEqual(again.body, { accepted: 0, duplicate: 3, rejected: 0, results: flushed.map((id) => ({ status: 'duplicate', eventId: id })) });
      const single = await second.post('/v1/events/ingest', { event: screenView(unflushed[0]!, 'dev-2') }, { key: second.keys.appB });
      assert.deepEqual(single.body, { status: 'duplicate', eventId: unflushed[0] });
      const fresh = randomUUID();
      const r3 = await second.post('/v1/events/ingest', { event: screenView(fresh) }, { key: second.keys.appA });
      assert.deepEqual(r3.body, { status: 'accepted', eventId: fresh });

      await second.node.flush();
      assert.deepEqual(await countsById(second, [...all, fresh]), Object.fromEntries([...all, fresh].map((id) => [id, 1])));
      assert.equal((await second.sql('SELECT count(*) FROM events')).rows[0]![0], 6);
    } finally {
      await first.stop();
      if (second) await second.close();
      else await first.close();
    }
  });
});
