// Reactions on a whole node: events over HTTP → detector → anomaly + outbox rows in one transaction → dispatcher →
// a real local receiver that verifies the signature. Endpoints CRUD with app scoping, config endpoints read-only,
// dead letters listed and replayed over the API, metrics, and a restart in the middle with the receiver down.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startTestNode, waitFor, type TestNode } from './helpers.js';
import { SECRET, startReceiver, type Receiver } from './react-helpers.js';

const SOURCE = 'rule:credential-stuffing-device';
const FAST = {
  DETECTOR_SNAPSHOT_INTERVAL: '200ms',
  WEBHOOK_BACKOFF_BASE: '20ms',
  WEBHOOK_BACKOFF_MAX: '200ms',
  WEBHOOK_TIMEOUT: '1s',
  WEBHOOK_GROUP_WINDOW: '0',
};

function failedLogins(deviceId: string, n = 12) {
  const t0 = Date.now() - 120_000;
  return Array.from({ length: n }, (_, i) => ({ deviceId, userId: `victim-${i}`, type: 'userLogin', success: false, timestamp: t0 + i * 5_000 }));
}

describe('webhooks over HTTP', () => {
  let t: TestNode;
  let ops: Receiver;
  let flaky: Receiver;
  let flakyUp = false;
  before(async () => {
    ops = await startReceiver(SECRET);
    flaky = await startReceiver(SECRET, () => (flakyUp ? { status: 200 } : { status: 503 }));
    const webhooks = [{ id: 'ops', url: ops.url, secret: SECRET, filters: { sources: [SOURCE], appIds: ['appA'] } }];
    t = await startTestNode({ ...FAST, WEBHOOK_MAX_ATTEMPTS: '3', CAUSALITY_WEBHOOKS: JSON.stringify(webhooks) });
  });
  after(async () => {
    await t.close();
    await ops.close();
    await flaky.close();
  });

  test('endpoints: config ones read-only, created over HTTP with the secret shown once, scoped to an app key', async () => {
    const admin = { key: t.keys.admin };
    const list = await t.get('/v1/webhooks', admin);
    assert.equal(list.status, 200);
    const cfg = list.body.items.find((e: { id: string }) => e.id === 'ops');
    assert.equal(cfg.origin, 'config');
    assert.equal(cfg.secret, undefined, 'never shown');
    assert.equal((await t.request('/v1/webhooks/ops', { ...admin, method: 'PATCH', body: '{"enabled":false}', headers: { 'content-type': 'application/json' } })).status, 409);
    assert.equal((await t.get('/v1/webhooks')).status, 401);

    const bad = await t.post('/v1/webhooks', { url: 'ftp://example.com/x' }, admin);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'url');
    const unknown = await t.post('/v1/webhooks', { url: 'http://127.0.0.1:9/x', filters: { severity: 'high' } }, admin);
    assert.equal(unknown.status, 400, 'an unknown filter is refused, not ignored');
    const foreign = await t.post('/v1/webhooks', { url: 'http://127.0.0.1:9/x', filters: { appIds: ['appB'] } }, { key: t.keys.appA });
    assert.equal(foreign.status, 403);

    const created = await t.post('/v1/webhooks', { url: 'http://127.0.0.1:9/x', format: 'slack', filters: { minSeverity: 'critical' } }, { key: t.keys.appA });
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.secret, /^whsec_/);
    assert.deepEqual(created.body.filters, { minSeverity: 'critical', appIds: ['appA'] });
    const id = created.body.id;
    assert.equal((await t.get(`/v1/webhooks/${id}`, { key: t.keys.appB })).status, 404, "another app's key does not see it");
    assert.ok(!(await t.get('/v1/webhooks', { key: t.keys.appB })).body.items.some((e: { id: string }) => e.id === id));
    const got = await t.get(`/v1/webhooks/${id}`, { key: t.keys.appA });
    assert.equal(got.body.secret, undefined);
    assert.equal(got.body.format, 'slack');
    const patched = await t.request(`/v1/webhooks/${id}`, { key: t.keys.appA, method: 'PATCH', body: '{"enabled":false}', headers: { 'content-type': 'application/json' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.enabled, false);
    assert.equal((await t.post('/v1/webhooks', { id, url: 'http://127.0.0.1:9/y' }, admin)).status, 409, 'ids are unique');
    assert.equal((await t.request(`/v1/webhooks/${id}`, { key: t.keys.appA, method: 'DELETE' })).status, 204);
    assert.equal((await t.get(`/v1/webhooks/${id}`, admin)).status, 404);
  });

  test('an anomaly raised from ingested events reaches the receiver signed, with its explanation and delivery id', async () => {
    const r = await t.post('/v1/events/batch', { events: failedLogins('stuffer-w1') }, { key: t.keys.appA });
    assert.equal(r.status, 202);
    const got = (await waitFor('the webhook', () => ops.requests.find((q) => q.body?.anomaly?.entityId === 'stuffer-w1'), 15_000))!;
    assert.ok(got.verified, 'signature verifies with the endpoint secret');
    assert.equal(got.headers['x-causality-delivery'], got.body.deliveryId);
    assert.equal(got.headers['x-causality-event'], 'anomaly');
    assert.equal(got.body.anomaly.source, SOURCE);
    assert.equal(got.body.anomaly.appId, 'appA');
    assert.match(got.body.anomaly.explanation, /\d/);
    assert.ok(got.body.anomaly.eventIds.length > 0);
    // The same anomaly over the anomalies API, and the delivery's record.
    const a = await t.get(`/v1/anomalies/${got.body.anomaly.id}`, { key: t.keys.appA });
    assert.equal(a.body.explanation, got.body.anomaly.explanation);
    const d = await waitFor('recorded as delivered', async () => {
      const x = await t.get(`/v1/webhooks/deliveries/${got.deliveryId}`, { key: t.keys.appA });
      return x.body.status === 'delivered' ? x.body : null;
    });
    assert.equal(d.attempts, 1);
    assert.equal((await t.get(`/v1/webhooks/deliveries/${got.deliveryId}`, { key: t.keys.appB })).status, 404);
    const listed = await t.get('/v1/webhooks/ops/deliveries?status=delivered', { key: t.keys.admin });
    assert.ok(listed.body.items.some((x: { id: string }) => x.id === got.deliveryId));
    // Operations: deliveries by outcome, queue depth, dead letters (main thread); enqueued (the detector's thread).
    const m = await t.get('/metrics');
    assert.match(m.text, /causality_webhook_deliveries_total\{endpoint="ops",outcome="delivered"\} [1-9]/);
    assert.match(m.text, /causality_webhook_attempts_total\{endpoint="ops",outcome="delivered"\} [1-9]/);
    assert.match(m.text, /causality_webhook_queue_depth \d/);
    assert.match(m.text, /causality_webhook_dead_letters \d/);
    assert.match(m.text, /causality_webhook_delivery_latency_seconds_bucket/);
    assert.match(m.text, /causality_webhook_alerts_enqueued_total\{result="created"\} [1-9]/);
  });

  test('the Grafana dashboard and the alert rules use only metrics the node serves', async () => {
    const text = (await t.get('/metrics')).text;
    const files = ['ops/grafana/causality.json', 'ops/causality-alerts.yml'].map((f) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8'));
    const names = new Set(files.flatMap((f) => f.match(/causality_[a-z0-9_]+/g) ?? []).map((n) => n.replace(/_bucket$/, '')));
    const missing = [...names].filter((n) => !n.startsWith('causality_overview') && !new RegExp(`^(# HELP )?${n}[ {]`, 'm').test(text));
    assert.deepEqual(missing, []);
  });

  test('dead letters: listed over the API (scoped), replayed with the same delivery id', async () => {
    const created = await t.post('/v1/webhooks', { id: 'flaky', url: flaky.url, secret: SECRET, filters: { appIds: ['appA'], sources: [SOURCE] } }, { key: t.keys.admin });
    assert.equal(created.status, 201);
    await t.post('/v1/events/batch', { events: failedLogins('stuffer-w2') }, { key: t.keys.appA });
    const dead = await waitFor(
      'a dead letter',
      async () => (await t.get('/v1/webhooks/dead-letters?endpoint_id=flaky', { key: t.keys.admin })).body.items?.[0],
      15_000,
    );
    assert.equal(dead.attempts, 3);
    assert.equal(dead.lastStatus, 503);
    assert.equal(flaky.requests.length, 3);
    assert.ok(flaky.requests.every((q) => q.verified && q.deliveryId === dead.id));
    assert.deepEqual((await t.get('/v1/webhooks/dead-letters', { key: t.keys.appB })).body.items, [], "another app's key sees none");
    assert.match((await t.get('/metrics')).text, /causality_webhook_deliveries_total\{endpoint="flaky",outcome="dead"\} 1/);

    flakyUp = true;
    const replay = await t.post(`/v1/webhooks/dead-letters/${dead.id}/replay`, {}, { key: t.keys.appA });
    assert.equal(replay.status, 200, replay.text);
    assert.equal(replay.body.replayed, 1);
    await waitFor('the replay accepted', () => flaky.accepted.has(dead.id));
    const again = await t.post(`/v1/webhooks/dead-letters/${dead.id}/replay`, {}, { key: t.keys.admin });
    assert.equal(again.status, 409, 'only dead letters are replayed');
    await waitFor('the replay recorded as delivered', async () => (await t.get(`/v1/webhooks/deliveries/${dead.id}`, { key: t.keys.admin })).body.status === 'delivered');
  });
});

describe('webhooks across a restart', () => {
  test('receiver down, node stopped with deliveries pending, started again on the same data dir: every one delivered, none twice', async () => {
    const receiver = await startReceiver(SECRET);
    await receiver.down();
    const env = { ...FAST, CAUSALITY_WEBHOOKS: JSON.stringify([{ id: 'ops', url: receiver.url, secret: SECRET, filters: { sources: [SOURCE] } }]) };
    const first = await startTestNode(env);
    const devices = Array.from({ length: 5 }, (_, i) => `restart-dev-${i}`);
    const r = await first.post('/v1/events/batch', { events: devices.flatMap((d) => failedLogins(d)) }, { key: first.keys.appA });
    assert.equal(r.status, 202);
    await waitFor('5 deliveries pending, tried', async () => {
      const items = (await first.node.reactions.store.listDeliveries({ status: 'pending' })).items;
      return items.length === 5 && items.some((d) => d.attempts > 0);
    }, 15_000);
    await first.stop();

    await receiver.up();
    const second = await startTestNode(env, { dataDir: first.dataDir });
    try {
      await waitFor('all 5 delivered after the restart', async () => (await second.node.reactions.store.stats()).delivered === 5, 15_000);
      assert.equal(receiver.accepted.size, 5);
      assert.ok([...receiver.accepted.values()].every((v) => v.length === 1), 'none twice');
      assert.ok(receiver.requests.every((q) => q.verified));
      assert.deepEqual(new Set(receiver.requests.map((q) => q.body.anomaly.entityId)), new Set(devices));
      // The detector's replay after the restart stored nothing twice, so it enqueued nothing twice.
      await second.node.detector!.drainTo(second.node.bus.endOffset());
      const all = (await second.node.reactions.store.listDeliveries({})).items;
      assert.equal(all.length, 5);
      assert.ok(all.every((d) => d.status === 'delivered'));
      const st = await second.node.reactions.store.stats();
      assert.equal(st.dead, 0);
    } finally {
      await second.close();
      await receiver.close();
    }
  });
});
