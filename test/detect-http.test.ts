// Detection live: events over HTTP → the log → the detector thread → anomalies in the state store → the API.
// Rules are managed over HTTP and hot-reloaded; a restart restores the detector's snapshot and re-raises nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestNode, waitFor, type TestNode } from './helpers.js';

const ENV = { DETECTOR_SNAPSHOT_INTERVAL: '200ms' };

function failedLogins(n: number, deviceId: string, t0: number) {
  return Array.from({ length: n }, (_, i) => ({
    deviceId,
    userId: `victim-${i}`,
    type: 'userLogin',
    success: false,
    timestamp: t0 + i * 5_000,
  }));
}

describe('detection over HTTP', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode(ENV);
  });
  after(async () => {
    await t.close();
  });

  test('a credential-stuffing burst becomes a stored anomaly with an explanation, filterable and pageable', async () => {
    const r = await t.post('/v1/events/batch', { events: failedLogins(12, 'stuffer-1', Date.now() - 120_000) }, { key: t.keys.appA });
    assert.equal(r.status, 202);
    const page = await waitFor('an anomaly for stuffer-1', async () => {
      const a = await t.get('/v1/anomalies?entity_id=stuffer-1', { key: t.keys.appA });
      return a.body.items?.length ? a.body : null;
    });
    const a = page.items[0];
    assert.equal(a.appId, 'appA');
    assert.equal(a.entityType, 'device');
    assert.match(a.source, /^rule:credential-stuffing-device/);
    assert.match(a.explanation, /\d/);
    assert.ok(a.eventIds.length > 0);
    // Severity filter and app scoping.
    const high = await t.get('/v1/anomalies?min_severity=high', { key: t.keys.appA });
    assert.ok(high.body.items.every((x: { severity: string }) => x.severity === 'high' || x.severity === 'critical'));
    const other = await t.get('/v1/anomalies?entity_id=stuffer-1', { key: t.keys.appB });
    assert.deepEqual(other.body.items, []);
    const forbidden = await t.get('/v1/anomalies?app_id=appA', { key: t.keys.appB });
    assert.equal(forbidden.status, 403);
    const badCursor = await t.get('/v1/anomalies?cursor=nonsense', { key: t.keys.appA });
    assert.equal(badCursor.status, 400);
    // SQL beside events: the anomaly joins its triggering events; an app key sees its own app's anomalies only.
    await t.node.flush();
    const joined = await t.sql(
      `SELECT a.source, a.severity, count(e.event_id)::INT FROM anomalies a JOIN events e ON list_contains(a.event_ids, e.event_id::VARCHAR) WHERE a.id = '${a.id}' GROUP BY ALL`,
      t.keys.appA,
    );
    assert.deepEqual(joined.rows, [[a.source, a.severity, a.eventIds.length]]);
    const scoped = await t.sql(`SELECT count(*)::INT FROM anomalies`, t.keys.appB);
    assert.deepEqual(scoped.rows, [[0]]);
    // Acknowledge it.
    const ack = await t.post(`/v1/anomalies/${a.id}/status`, { status: 'acknowledged' }, { key: t.keys.appA });
    assert.equal(ack.status, 200);
    const got = await t.get(`/v1/anomalies/${a.id}`, { key: t.keys.appA });
    assert.equal(got.body.status, 'acknowledged');
    const bad = await t.post(`/v1/anomalies/${a.id}/status`, { status: 'gone' }, { key: t.keys.appA });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'status');
  });

  test('rules over HTTP: invalid refused naming the field, valid saved and hot-reloaded into the detector', async () => {
    const bad = await t.request('/v1/rules/custom', {
      method: 'PUT',
      key: t.keys.admin,
      body: 'rules:\n  - id: x\n    kind: window\n    key: nowhere\n',
      headers: { 'content-type': 'application/yaml' },
    });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.body.error.code, 'invalid_rule');
    assert.ok(bad.body.error.field);
    const appKey = await t.request('/v1/rules', { key: t.keys.appA });
    assert.equal(appKey.status, 403);

    const yaml = [
      'rules:',
      '  - id: vip-purchase',
      '    kind: window',
      '    key: device',
      '    where: { type: purchaseComplete }',
      '    window: 10m',
      '    aggregate: count',
      '    threshold: 2',
      '    severity: critical',
      '    category: fraud',
      '    cooldown: 1h',
      '',
    ].join('\n');
    const put = await t.request('/v1/rules/custom', { method: 'PUT', key: t.keys.admin, body: yaml, headers: { 'content-type': 'application/yaml' } });
    assert.equal(put.status, 201, put.text);
    const list = await t.get('/v1/rules', { key: t.keys.admin });
    assert.ok(list.body.files.some((f: { file: string; ok: boolean }) => f.file === 'custom.yaml' && f.ok));

    // The watcher reloads within its debounce; keep sending pairs of purchases until the new rule fires.
    let n = 0;
    const found = await waitFor('the hot-reloaded rule to fire', async () => {
      const dev = `vip-${n++}`;
      const t0 = Date.now() - 60_000;
      await t.post('/v1/events/batch', { events: [0, 1].map((i) => ({ deviceId: dev, type: 'purchaseComplete', totalAmount: 10, currency: 'EUR', timestamp: t0 + i })) }, { key: t.keys.appA });
      const a = await t.get('/v1/anomalies?source=rule:vip-purchase', { key: t.keys.appA });
      return a.body.items?.length ? a.body.items[0] : null;
    });
    assert.equal(found.severity, 'critical');
    const del = await t.request('/v1/rules/custom', { method: 'DELETE', key: t.keys.admin });
    assert.equal(del.status, 204);
  });

  test('a restart restores the snapshot and re-raises no anomaly', async () => {
    // Everything sent so far scored and snapshotted (the committed offset moves with each snapshot).
    await t.node.detector!.drainTo(t.node.bus.endOffset());
    const before = await t.get('/v1/anomalies?limit=1000', { key: t.keys.admin });
    const ids = before.body.items.map((a: { id: string }) => a.id).sort();
    assert.ok(ids.length >= 2);
    const dataDir = t.dataDir;
    await t.stop();
    t = await startTestNode(ENV, { dataDir });
    // The same attacker again, inside its cool-down: the restored state knows it was raised (a fresh engine would raise
    // it again under a new window id). Fresh events are still scored (the detector is alive).
    await t.post('/v1/events/batch', { events: failedLogins(12, 'stuffer-1', Date.now() - 50_000) }, { key: t.keys.appA });
    await t.post('/v1/events/batch', { events: failedLogins(12, 'stuffer-2', Date.now() - 60_000) }, { key: t.keys.appA });
    await waitFor('an anomaly for stuffer-2', async () => {
      const a = await t.get('/v1/anomalies?entity_id=stuffer-2', { key: t.keys.appA });
      return a.body.items?.length ? true : null;
    });
    await t.node.detector!.drainTo(t.node.bus.endOffset());
    // … and nothing from before was stored again (same ids, no copies).
    const after = await t.get('/v1/anomalies?limit=1000', { key: t.keys.admin });
    const again = after.body.items.filter((a: { entityId: string }) => a.entityId !== 'stuffer-2');
    assert.deepEqual(again.map((a: { id: string }) => a.id).sort(), ids, JSON.stringify(again.filter((a: { id: string }) => !ids.includes(a.id))));
  });
});

describe('warming the detector from known-good events', () => {
  test('the first start learns from DETECTOR_WARM_FROM; a restart restores its snapshot instead', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'causality-warm-'));
    const file = join(dir, 'good.jsonl');
    const t0 = Date.now() - 3_600_000;
    const lines = Array.from({ length: 500 }, (_, i) =>
      JSON.stringify({ appId: 'appA', deviceId: `good-${i % 20}`, type: 'screenView', screenName: i % 2 ? 'Home' : 'Cart', timestamp: t0 + i * 1000 }),
    );
    await writeFile(file, `${lines.join('\n')}\n`);
    const metric = async (t: TestNode) => {
      const text = (await t.get('/metrics')).text;
      return Number(/^causality_detector_warmed_events (\d+)/m.exec(text)?.[1] ?? NaN);
    };
    let t = await startTestNode({ ...ENV, DETECTOR_WARM_FROM: file });
    try {
      assert.equal(await metric(t), 500);
      const dataDir = t.dataDir;
      await t.stop();
      t = await startTestNode({ ...ENV, DETECTOR_WARM_FROM: file }, { dataDir });
      assert.equal(await metric(t), 0, 'a snapshot exists: no second warm-up');
    } finally {
      await t.close();
    }
  });
});
