// Backtest over the warehouse's own Parquet files: what the live server stored is read back as stored events (one
// per event id, in time order) and scored by the same engine as the live detector.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBacktest } from '../src/detect/backtest.js';
import { readAnyEventsFile } from '../src/detect/event-file.js';
import { loadRulesDirStrict, SHIPPED_RULES_DIR } from '../src/detect/rules-loader.js';
import { startTestNode, type TestNode } from './helpers.js';

describe('backtest over Parquet', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ DETECTOR: 'off' });
  });
  after(async () => {
    await t.close();
  });

  test('the warehouse directory reads back every stored event and the engine flags the attack in it', async () => {
    const t0 = Date.now() - 600_000;
    const normal = Array.from({ length: 30 }, (_, i) => ({ deviceId: `ok-${i % 5}`, type: 'screenView', screenName: 'Home', timestamp: t0 + i * 1000 }));
    const attack = Array.from({ length: 12 }, (_, i) => ({ deviceId: 'pq-stuffer', userId: `v-${i}`, type: 'userLogin', success: false, timestamp: t0 + 40_000 + i * 3000 }));
    const r = await t.post('/v1/events/batch', { events: [...attack, ...normal] }, { key: t.keys.appA });
    assert.equal(r.body.accepted, 42);
    await t.node.flush();

    const { events, report } = await readAnyEventsFile(join(t.dataDir, 'warehouse'));
    assert.equal(report.events, 42);
    assert.equal(new Set(events.map((e) => e.event_id)).size, 42);
    for (let i = 1; i < events.length; i++) assert.ok(events[i - 1]!.ts <= events[i]!.ts, 'time order');
    const login = events.find((e) => e.device_id === 'pq-stuffer')!;
    assert.equal(login.success, false);
    assert.equal(typeof login.ts, 'number');
    assert.equal(typeof login.props, 'string');

    const raised: string[] = [];
    runBacktest({ events, rules: loadRulesDirStrict(SHIPPED_RULES_DIR), onAnomaly: (a) => raised.push(`${a.source} ${a.entityId}`) });
    assert.ok(raised.includes('rule:credential-stuffing-device pq-stuffer'), raised.join('; '));
  });
});
