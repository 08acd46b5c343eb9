// The anomaly and snapshot stores' contract, run against SQLite and PostgreSQL alike: idempotent inserts, filters,
// cursor paging in the same order (ids compare bytewise), status, snapshots as bytes; an anomaly and its webhook
// deliveries commit together or not at all; the SQL side table; migrations that two processes run at once.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { anomalyTable } from '../src/detect/anomaly-store.js';
import type { Anomaly } from '../src/detect/anomaly.js';
import type { EnqueueResult } from '../src/react/outbox-store.js';
import { backends } from './store-backends.js';
import { anomaly as someAnomaly, endpoint } from './react-helpers.js';

const start = Date.UTC(2026, 10, 2, 8);

const anomaly = (o: Partial<Anomaly>): Anomaly => ({
  id: 'a-1',
  appId: 'shop',
  entityType: 'device',
  entityId: 'dev-1',
  deviceId: 'dev-1',
  userId: 'u-1',
  sessionId: 's-1',
  ipHash: 'ip-1',
  ts: start,
  score: 0.8,
  severity: 'high',
  source: 'model:markov',
  category: 'modified_client',
  explanation: 'transition Home→Payment seen',
  eventIds: ['e-1'],
  details: { p: 1e-6, nested: { why: ['a', 'b'] } },
  ...o,
});

for (const backend of backends()) {
  describe(`anomaly store on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('idempotent insert, filters, cursor paging, get, status; snapshots', async () => {
      const db = await backend.fresh();
      const { anomalies: store, snapshots: snaps } = await db.open({ now: () => 1000 });
      const batch = Array.from({ length: 25 }, (_, i) =>
        anomaly({
          id: `a-${String(i).padStart(2, '0')}`,
          appId: i % 5 === 0 ? 'food' : 'shop',
          entityType: i % 2 ? 'user' : 'device',
          entityId: i % 2 ? `u-${i % 3}` : `dev-${i % 4}`,
          severity: (['low', 'medium', 'high', 'critical'] as const)[i % 4],
          source: i % 3 ? 'rule:brute-force-ip' : 'model:markov',
          ts: start + Math.floor(i / 2) * 1000,
        }),
      );
      assert.equal((await store.insert(batch)).length, 25);
      assert.equal((await store.insert(batch.slice(0, 10))).length, 0, 'same ids: nothing new');
      assert.equal((await store.insert([anomaly({ id: 'a-00', explanation: 'changed' })])).length, 0);
      assert.equal((await store.get('a-00'))!.explanation, batch[0]!.explanation, 'the first insert wins');
      // One id twice in one call: stored once, reported once.
      const twice = await store.insert([anomaly({ id: 'dup', explanation: 'first' }), anomaly({ id: 'dup', explanation: 'second' })]);
      assert.deepEqual(twice.map((a) => a.explanation), ['first']);
      assert.equal((await store.get('dup'))!.explanation, 'first');
      assert.equal(await store.setStatus('dup', 'resolved'), true);

      const got = await store.get('a-03');
      assert.deepEqual(got, { ...batch[3]!, status: 'open', createdAt: 1000, updatedAt: 1000 });
      assert.equal(await store.get('nope'), null);

      const ids = async (f: Parameters<typeof store.list>[0]) => (await store.list({ ...f, status: f?.status ?? 'open' }, { limit: 1000 })).items.map((a) => a.id).sort();
      assert.deepEqual(await ids({ appId: 'food' }), ['a-00', 'a-05', 'a-10', 'a-15', 'a-20']);
      assert.deepEqual(await ids({ appIds: ['food', 'nowhere'] }), ['a-00', 'a-05', 'a-10', 'a-15', 'a-20']);
      assert.deepEqual(await ids({ entityType: 'user', entityId: 'u-1' }), batch.filter((a) => a.entityId === 'u-1').map((a) => a.id).sort());
      assert.deepEqual(await ids({ severity: 'critical' }), ['a-03', 'a-07', 'a-11', 'a-15', 'a-19', 'a-23']);
      assert.equal((await ids({ minSeverity: 'high' })).length, 12);
      assert.deepEqual(await ids({ source: 'model:markov', appId: 'shop' }), ['a-03', 'a-06', 'a-09', 'a-12', 'a-18', 'a-21', 'a-24']);
      assert.deepEqual(await ids({ category: 'modified_client', from: start + 11_000 }), ['a-22', 'a-23', 'a-24']);
      assert.deepEqual(await ids({ to: start + 1000 }), ['a-00', 'a-01']);
      assert.deepEqual(await ids({ appIds: [] }), []);

      // Paging: newest first, ties broken by id, every row exactly once.
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await store.list({ status: 'open' }, { limit: 7, cursor });
        seen.push(...page.items.map((a) => a.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 4);
      assert.deepEqual(seen, [...batch].sort((a, b) => b.ts - a.ts || (b.id < a.id ? -1 : 1)).map((a) => a.id));
      await assert.rejects(store.list({}, { cursor: 'garbage' }), /cursor/);

      assert.equal(await store.setStatus('a-01', 'acknowledged'), true);
      assert.equal(await store.setStatus('missing', 'resolved'), false);
      assert.deepEqual(await ids({ status: 'acknowledged' }), ['a-01']);
      assert.equal((await ids({ status: 'open' })).length, 24);
      await assert.rejects(store.setStatus('a-02', 'bogus' as never), /status must be one of/);

      assert.equal(await snaps.load('detector'), null);
      await snaps.save('detector', Buffer.from('state-1'), '42', 10);
      const bytes = Buffer.from([0, 255, 1, 254, 0, 0, 10]);
      await snaps.save('detector', bytes, null, 20);
      const s = await snaps.load('detector');
      assert.deepEqual(s, { data: bytes, position: null, events: 20, savedAt: 1000 });
    });

    test('ties on time order ids bytewise (upper case, punctuation, digits), as SQLite does', async () => {
      const store = (await (await backend.fresh()).open()).anomalies;
      const idsGiven = ['b', 'B', 'a-1', 'a_1', 'a.1', 'A1', '~', 'Z', 'é', 'a10', 'a9'];
      await store.insert(idsGiven.map((id) => anomaly({ id, ts: start })));
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await store.list({}, { limit: 3, cursor });
        seen.push(...page.items.map((a) => a.id));
        cursor = page.nextCursor;
      } while (cursor);
      const bytewiseDesc = [...idsGiven].sort((x, y) => Buffer.compare(Buffer.from(y), Buffer.from(x)));
      assert.deepEqual(seen, bytewiseDesc);
    });

    test('an anomaly and its webhook deliveries commit together: a replay adds none, a failed outbox write stores neither', async () => {
      const db = await backend.fresh();
      const stores = await db.open({ groupWindowMs: 0 });
      await stores.outbox.putEndpoint(endpoint({ id: 'all', url: 'http://127.0.0.1:9/a' }));
      await stores.outbox.putEndpoint(endpoint({ id: 'critical-only', url: 'http://127.0.0.1:9/b', filters: { minSeverity: 'critical' } }));
      await stores.outbox.putEndpoint(endpoint({ id: 'off', url: 'http://127.0.0.1:9/c', enabled: false }));
      // The detector's side: its own connection, the group window read from the store.
      const detector = await db.open();
      const enqueued: EnqueueResult[] = [];
      const anomalies = detector.anomaliesWithOutbox((r) => enqueued.push(r));
      const a = someAnomaly({ severity: 'high' });
      const b = someAnomaly({ severity: 'critical' });
      assert.equal((await anomalies.insert([a, b])).length, 2);
      assert.equal(enqueued.length, 1);
      assert.deepEqual(enqueued[0]!.created.map((c) => `${c.endpointId}:${c.anomalyId}`).sort(), [`all:${a.id}`, `all:${b.id}`, `critical-only:${b.id}`].sort());
      const rows = (await stores.outbox.listDeliveries({})).items;
      assert.deepEqual(rows.map((d) => `${d.endpointId}:${d.anomalyId}`).sort(), [`all:${a.id}`, `all:${b.id}`, `critical-only:${b.id}`].sort());
      assert.ok(rows.every((d) => d.status === 'pending' && d.attempts === 0 && d.anomalyCount === 1));

      // The detector replays after a restart: the anomalies exist, so no delivery is written again.
      assert.equal((await anomalies.insert([a, b])).length, 0);
      assert.equal((await stores.outbox.listDeliveries({})).items.length, 3);

      // The outbox write fails after its rows are written, in the same transaction: nothing of it is kept.
      const failing = detector.anomaliesWithOutbox(() => {
        throw new Error('disk full');
      });
      const c = someAnomaly({ severity: 'critical' });
      await assert.rejects(failing.insert([c, someAnomaly()]), /disk full/);
      assert.equal(await stores.anomalies.get(c.id), null);
      assert.equal((await stores.outbox.listDeliveries({})).items.length, 3);
      assert.equal((await stores.outbox.stats()).pending, 3);
      // The same anomaly inserted again afterwards is new (the failed attempt left nothing behind).
      assert.equal((await anomalies.insert([c])).length, 1);
      assert.equal((await stores.outbox.listDeliveries({})).items.length, 5);
    });

    test('the SQL side table lists every anomaly of the asked app through the port, paging past 1000', async () => {
      const store = (await (await backend.fresh()).open()).anomalies;
      await store.insert(Array.from({ length: 1205 }, (_, i) => anomaly({ id: `t-${i}`, appId: i % 2 ? 'shop' : 'food', ts: start + i })));
      const table = anomalyTable(store);
      const shop = await table.rows('shop');
      assert.equal(shop.length, 602);
      assert.equal(new Set(shop.map((r) => r.id)).size, 602);
      assert.ok(shop.every((r) => r.app_id === 'shop'));
      assert.equal((await table.rows(null)).length, 1205);
      assert.deepEqual(shop[0], {
        id: 't-1203', app_id: 'shop', entity_type: 'device', entity_id: 'dev-1', device_id: 'dev-1', user_id: 'u-1', session_id: 's-1', ip_hash: 'ip-1',
        ts: new Date(start + 1203).toISOString(), score: 0.8, severity: 'high', source: 'model:markov', category: 'modified_client',
        explanation: 'transition Home→Payment seen', status: 'open', event_ids: ['e-1'], details: { p: 1e-6, nested: { why: ['a', 'b'] } },
        created_at: shop[0]!.created_at,
      });
    });

    test('client-given ids with a NUL are stored (PostgreSQL keeps it as U+FFFD), so the insert never fails on replay', async () => {
      const store = (await (await backend.fresh()).open()).anomalies;
      const a = anomaly({ id: 'nul-1', entityId: 'dev\u0000x', deviceId: 'dev\u0000x', userId: '\u0000', explanation: 'device dev\u0000x' });
      assert.equal((await store.insert([a])).length, 1);
      const got = (await store.get('nul-1'))!;
      const shown = (s: string | null) => s?.replaceAll('\u0000', '\uFFFD');
      assert.deepEqual([got.entityId, got.deviceId, got.userId, got.explanation].map(shown), ['dev\uFFFDx', 'dev\uFFFDx', '\uFFFD', 'device dev\uFFFDx']);
    });

    test('migrations: processes starting at once each apply every step exactly once, and work', async () => {
      const db = await backend.fresh();
      const opened = await Promise.all([db.open(), db.open(), db.open()]);
      const [x, y] = opened;
      assert.equal((await x!.anomalies.insert([anomaly({ id: 'm-1' })])).length, 1);
      assert.equal((await y!.anomalies.get('m-1'))!.id, 'm-1');
      // Opening again later finds every step done.
      const later = await db.open();
      assert.equal((await later.anomalies.insert([anomaly({ id: 'm-1' })])).length, 0);
    });
  });
}
