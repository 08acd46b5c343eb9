import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partitionOf } from '../src/bus/partition.js';
import { checkBody } from '../src/ingest/check-body.js';

const facts = { receivedAt: Date.now(), appId: 'demo', ipHash: null, userAgent: null };

test('partitionOf is stable, in range, and spreads keys', () => {
  assert.equal(partitionOf('device-1', 1), 0);
  assert.equal(partitionOf('device-1', 4), partitionOf('device-1', 4));
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) counts[partitionOf(`device-${i}`, 4)]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven spread ${counts.join(',')}`);
});

test('checkBody tags events with their device partition only when the bus is partitioned', () => {
  const events = [
    { type: 'screenView', appId: 'demo', deviceId: 'dev-a', screenView: { screenName: 'Home' } },
    { type: 'screenView', appId: 'demo', deviceId: 'dev-b', screenView: { screenName: 'Home' } },
    { type: 'screenView', appId: 'demo', deviceId: 'dev-a', screenView: { screenName: 'Cart' } },
  ];
  const one = checkBody('batch', { events }, facts as never, 100);
  assert.equal(one.partitions, null);
  const four = checkBody('batch', { events }, facts as never, 100, 4);
  const parts = [...four.partitions!];
  assert.deepEqual(parts, [partitionOf('dev-a', 4), partitionOf('dev-b', 4), partitionOf('dev-a', 4)]);
});
