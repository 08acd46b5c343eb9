// Seed 000's protobuf envelope: application/x-protobuf bodies, encoded with the published .proto, land exactly like
// their JSON twins; a body that does not decode gets a 400 naming it, never a 500.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import protobuf from 'protobufjs';
import { lit, startTestNode, type TestNode } from './helpers.js';

describe('protobuf envelope', () => {
  let t: TestNode;
  let Event: protobuf.Type;
  let Batch: protobuf.Type;
  before(async () => {
    t = await startTestNode();
    // The .proto as the server publishes it, as a mobile team would fetch it.
    const proto = await t.get('/proto/events.proto');
    assert.equal(proto.status, 200);
    const root = protobuf.parse(proto.text).root;
    Event = root.lookupType('causality.v1.Event');
    Batch = root.lookupType('causality.v1.EventBatch');
  });
  after(async () => {
    await t.close();
  });

  const post = (path: string, bytes: Uint8Array) =>
    t.request(path, { body: Buffer.from(bytes), key: t.keys.appA, headers: { 'content-type': 'application/x-protobuf' } });

  test('a batch of typed kinds and a custom event, with context and properties', async () => {
    const ts = Date.now() - 5_000;
    const msg = Batch.fromObject({
      events: [
        { eventId: '0b6f2c52-4c1e-4a8e-9a51-3d2f0e7b1a01', deviceId: 'pb-dev', userId: 'pb-user', timestamp: ts, context: { appVersion: '5.1', platform: 'android', osVersion: '14' }, screenView: { screenName: 'Home' } },
        { eventId: '0b6f2c52-4c1e-4a8e-9a51-3d2f0e7b1a02', deviceId: 'pb-dev', timestamp: ts, purchaseComplete: { orderId: 'o-1', totalAmount: 19.5, currency: 'usd', itemCount: 3 } },
        { eventId: '0b6f2c52-4c1e-4a8e-9a51-3d2f0e7b1a03', deviceId: 'pb-dev', timestamp: ts, customEvent: { name: 'level_up', params: { level: '7', boss: '"dragon"' } }, properties: { ab: 'true' } },
      ],
    });
    const r = await post('/v1/events/batch', Batch.encode(msg).finish());
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.accepted, 3);
    await t.node.flush();
    const rows = await t.sql(
      `SELECT type, screen_name, order_id, price, currency, quantity, app_version, platform, os_version, epoch_ms(ts), props FROM events WHERE device_id = 'pb-dev' ORDER BY event_id`,
    );
    assert.deepEqual(rows.rows[0]!.slice(0, 10), ['screenView', 'Home', null, null, null, null, '5.1', 'android', '14', ts]);
    assert.deepEqual(rows.rows[1]!.slice(0, 6), ['purchaseComplete', null, 'o-1', 19.5, 'USD', 3]);
    assert.equal(rows.rows[2]![0], 'customEvent');
    assert.deepEqual(JSON.parse(rows.rows[2]![10] as string), { name: 'level_up', level: 7, boss: 'dragon', ab: true });
  });

  test('a single event on /v1/events/ingest; its JSON twin is a duplicate (same id, same event)', async () => {
    const id = '0b6f2c52-4c1e-4a8e-9a51-3d2f0e7b1a10';
    const r = await post('/v1/events/ingest', Event.encode(Event.fromObject({ eventId: id, deviceId: 'pb-2', buttonTap: { buttonId: 'buy', screenName: 'Cart' } })).finish());
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.body, { status: 'accepted', eventId: id });
    const twin = await t.post('/v1/events/ingest', { eventId: id, deviceId: 'pb-2', buttonTap: { buttonId: 'buy', screenName: 'Cart' } }, { key: t.keys.appA });
    assert.deepEqual(twin.body, { status: 'duplicate', eventId: id });
    await t.node.flush();
    const rows = await t.sql(`SELECT type, button_id, screen_name FROM events WHERE event_id = ${lit(id)}`);
    assert.deepEqual(rows.rows, [['buttonTap', 'buy', 'Cart']]);
  });

  test('bad protobuf input: 400 naming the problem; missing fields named like JSON; other routes 415', async () => {
    const garbage = await post('/v1/events/batch', new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.error.code, 'invalid_protobuf');
    const noDevice = await post('/v1/events/ingest', Event.encode(Event.fromObject({ screenView: { screenName: 'Home' } })).finish());
    assert.equal(noDevice.status, 400);
    assert.equal(noDevice.body.error.field, 'deviceId');
    const collect = await post('/v1/collect', Event.encode(Event.fromObject({ deviceId: 'x' })).finish());
    assert.equal(collect.status, 415);
  });
});
