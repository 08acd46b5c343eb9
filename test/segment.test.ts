// Segment's HTTP Tracking API: the real @segment/analytics-node SDK, unchanged, pointed at our server; its wire
// details (Basic auth, batch bodies, sentAt, messageId retries) and the mapping onto our envelope, checked with SQL.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import { lit, startTestNode, type TestNode } from './helpers.js';

const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;

describe('Segment HTTP Tracking API', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.close();
  });

  test('@segment/analytics-node, unchanged, delivers 10 000 events of mixed kinds; SQL counts match exactly', async () => {
    const analytics = new Analytics({ writeKey: t.keys.appA, host: t.url, flushAt: 200, flushInterval: 50, maxRetries: 3 });
    const failures: unknown[] = [];
    analytics.on('error', (e) => failures.push(e));
    const expected = { track: 0, order: 0, page: 0, screen: 0, identify: 0, group: 0, alias: 0 };
    let revenue = 0;
    for (let i = 0; i < 10_000; i++) {
      const userId = `user-${i % 250}`;
      const context = { app: { version: '2.3.0', build: '230' }, os: { name: 'iOS', version: '17.1' }, device: { type: 'ios', model: 'iPhone15,2' } };
      switch (i % 8) {
        case 0:
        case 1:
          analytics.track({ userId, event: 'Video Played', properties: { seq: i, title: `v${i % 7}` }, context });
          expected.track++;
          break;
        case 2: {
          const total = (i % 50) + 0.5;
          revenue += total;
          analytics.track({ userId, event: 'Order Completed', properties: { order_id: `o-${i}`, total, currency: 'eur', products: [{ sku: 'a' }, { sku: 'b' }] } });
          expected.order++;
          break;
        }
        case 3:
          analytics.page({ anonymousId: `anon-${i % 300}`, name: 'Pricing', properties: { url: `https://shop.example/pricing?utm_source=news&i=${i}`, referrer: 'https://news.example/' } });
          expected.page++;
          break;
        case 4:
          analytics.screen({ userId, name: 'Checkout', context });
          expected.screen++;
          break;
        case 5:
          analytics.identify({ userId, traits: { plan: 'pro', seq: i } });
          expected.identify++;
          break;
        case 6:
          analytics.group({ userId, groupId: `g-${i % 9}`, traits: { size: i % 100 } });
          expected.group++;
          break;
        default:
          analytics.alias({ userId, previousId: `anon-${i}` });
          expected.alias++;
      }
    }
    await analytics.closeAndFlush({ timeout: 60_000 });
    assert.deepEqual(failures, []);
    await t.node.flush();

    const byType = await t.sql(`SELECT type, count(*)::INT AS n FROM events WHERE app_id = 'appA' GROUP BY type ORDER BY type`);
    assert.deepEqual(Object.fromEntries(byType.rows.map((r) => [r[0], r[1]])), {
      'Video Played': expected.track,
      purchaseComplete: expected.order,
      pageview: expected.page,
      screenView: expected.screen,
      identify: expected.identify,
      group: expected.group,
      alias: expected.alias,
    });
    const total = await t.sql(`SELECT count(*)::INT, count(DISTINCT event_id)::INT FROM events WHERE app_id = 'appA'`);
    assert.deepEqual(total.rows[0], [10_000, 10_000]);

    // The mapping: spec e-commerce events get typed columns, context becomes columns, pages their URL parts.
    const orders = await t.sql(`SELECT round(sum(price), 2), min(currency), max(quantity), count(DISTINCT order_id)::INT FROM events WHERE type = 'purchaseComplete'`);
    assert.deepEqual(orders.rows[0], [Math.round(revenue * 100) / 100, 'EUR', 2, expected.order]);
    const screens = await t.sql(`SELECT DISTINCT screen_name, app_version, app_build, os, os_version, device_model, platform FROM events WHERE type = 'screenView'`);
    assert.deepEqual(screens.rows, [['Checkout', '2.3.0', '230', 'iOS', '17.1', 'iPhone15,2', 'ios']]);
    const pages = await t.sql(`SELECT DISTINCT path, utm_source, referrer, json_extract_string(props, '$.name') FROM events WHERE type = 'pageview'`);
    assert.deepEqual(pages.rows, [['/pricing', 'news', 'https://news.example/', 'Pricing']]);
    const lib = await t.sql(`SELECT DISTINCT json_extract_string(props, '$."context.library".name') FROM events WHERE type = 'identify'`);
    assert.deepEqual(lib.rows, [['@segment/analytics-node']]);
  });

  test('an SDK retry with the same messageIds creates no duplicate rows', async () => {
    const body = JSON.stringify({
      batch: [
        { type: 'track', messageId: 'retry-1', userId: 'u1', event: 'Retry Test', timestamp: new Date().toISOString() },
        { type: 'identify', messageId: 'retry-2', userId: 'u1', traits: { a: 1 } },
      ],
      sentAt: new Date().toISOString(),
    });
    const headers = { authorization: basic(t.keys.appB), 'content-type': 'application/json' };
    const first = await t.request('/v1/batch', { body, headers });
    assert.equal(first.status, 202);
    assert.deepEqual([first.body.accepted, first.body.duplicate], [2, 0]);
    const retry = await t.request('/v1/batch', { body, headers });
    assert.equal(retry.status, 202);
    assert.deepEqual([retry.body.accepted, retry.body.duplicate], [0, 2]);
    assert.deepEqual(
      retry.body.results.map((r: { eventId: string }) => r.eventId),
      first.body.results.map((r: { eventId: string }) => r.eventId),
    );
    await t.node.flush();
    const rows = await t.sql(`SELECT count(*)::INT FROM events WHERE app_id = 'appB' AND json_extract_string(props, '$."$client_event_id"') IN ('retry-1', 'retry-2')`);
    assert.deepEqual(rows.rows, [[2]]);
  });

  test('single-message routes, clock-skew correction from sentAt, gzip bodies, no raw IP kept, errors name Segment fields', async () => {
    const now = Date.now();
    // The device clock is 1 hour behind: its event 10 s before sending lands 10 s before receipt.
    const skewed = (ms: number) => new Date(ms - 3_600_000).toISOString();
    const track = {
      messageId: 'skew-1',
      userId: 'u-skew',
      event: 'Skewed',
      timestamp: skewed(now - 10_000),
      sentAt: skewed(now),
      context: { ip: '203.0.113.9', campaign: { source: 'newsletter', name: 'winter' } },
    };
    const r = await t.request('/v1/track', { body: gzipSync(JSON.stringify(track)), headers: { authorization: basic(t.keys.appB), 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.status, 'accepted');
    await t.node.flush();
    const row = await t.sql(`SELECT epoch_ms(ts), epoch_ms(received_at), utm_source, utm_campaign, props FROM events WHERE event_id = ${lit(r.body.eventId)}`);
    const [ts, received, source, campaign, props] = row.rows[0] as [number, number, string, string, string];
    assert.ok(Math.abs(received - ts - 10_000) < 2_000, `corrected ts ${ts} should be ~10 s before receipt ${received}`);
    assert.deepEqual([source, campaign], ['newsletter', 'winter']);
    assert.ok(!props.includes('203.0.113.9'), 'the raw IP from context.ip must not be stored');

    const bad = await t.request('/v1/track', { body: JSON.stringify({ event: 'No Id' }), headers: { authorization: basic(t.keys.appB), 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'anonymousId');

    const noKey = await t.request('/v1/track', { body: JSON.stringify({ userId: 'u', event: 'x' }), headers: { 'content-type': 'application/json' } });
    assert.equal(noKey.status, 401);
    const wrongKey = await t.request('/v1/track', { body: JSON.stringify({ userId: 'u', event: 'x' }), headers: { authorization: basic('nope'), 'content-type': 'application/json' } });
    assert.equal(wrongKey.status, 401);

    const corrupt = await t.request('/v1/track', { body: Buffer.from('not gzip at all'), headers: { authorization: basic(t.keys.appB), 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    assert.equal(corrupt.status, 400);
    assert.equal(corrupt.body.error.code, 'invalid_encoding');
    const unknownEncoding = await t.request('/v1/track', { body: 'x', headers: { authorization: basic(t.keys.appB), 'content-type': 'application/json', 'content-encoding': 'compress' } });
    assert.equal(unknownEncoding.status, 415);
  });

  test('a gzip bomb is refused by the decoded body limit, not buffered', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < 200_000);
    const r = await t.request('/v1/batch', { body: bomb, headers: { authorization: basic(t.keys.appB), 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    assert.equal(r.status, 413);
  });

  test('browsers: text/plain JSON with the key in the query string (no CORS preflight)', async () => {
    const r = await t.request(`/v1/collect?key=${t.keys.appB}`, {
      body: JSON.stringify([{ site_id: 'appB', event_name: 'pageview', url: 'https://site.example/a?utm_medium=cpc', device_id: 'browser-1' }]),
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
    });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.accepted, 1);
  });
});
