// Burst deferral: the ingest rate crosses shared memory to consumers; they defer only while ingest is above the
// threshold and only until their oldest pending record has waited the maximum.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IngestPressure, PressureGauge } from '../src/bus/ingest-pressure.js';
import { SegmentedLog } from '../src/bus/segmented-log.js';
import { encodeIngestRecord } from '../src/event/ingest-record.js';
import { waitFor } from './helpers.js';

test('consumers defer during a burst, never past the maximum deferral, and not when ingest is calm', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'causality-pressure-'));
  const log = await SegmentedLog.open({ dir });
  const pressure = new IngestPressure();
  const gauge = new PressureGauge(pressure.buffer, { aboveEventsPerSecond: 1000, maxDeferMs: 5_000 });
  try {
    const now = Date.now();
    const record = (receivedAt: number) =>
      encodeIngestRecord({ v: 1, route: 'batch', receivedAt, keyAppId: 'a', ipHash: null, userAgent: null, ids: ['x'] }, Buffer.from('{"events":[{}]}'));
    await log.appendDurably([record(now), record(now - 10_000)]);

    assert.equal(gauge.bursting, false);
    assert.equal(await gauge.deferAt(log, 0), false, 'calm ingest: never defer');

    // A burst: well above 1000 events/s for a few publication periods.
    const feed = setInterval(() => pressure.add(500), 5);
    try {
      await waitFor('the burst to be published', () => gauge.bursting, 5_000);
      assert.equal(await gauge.deferAt(log, 0), true, 'a fresh record waits');
      assert.equal(await gauge.deferAt(log, 1), false, 'a record older than the maximum deferral is consumed');
      assert.equal(await gauge.deferAt(log, 2), false, 'nothing pending: nothing to wait for');
    } finally {
      clearInterval(feed);
    }
    await waitFor('the burst to end', () => !gauge.bursting, 5_000);
    assert.equal(await gauge.deferAt(log, 0), false);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the published rate follows a burst within milliseconds and falls back after it', () => {
  const pressure = new IngestPressure();
  const gauge = new PressureGauge(pressure.buffer, { aboveEventsPerSecond: 20_000, maxDeferMs: 5_000 });
  const t0 = 1_000_000;
  assert.equal(gauge.ingestEventsPerSecond(t0), 0);
  // 100-event requests every 0.5 ms: 200k events/s.
  let t = t0;
  for (; t < t0 + 25; t += 0.5) pressure.add(100, t);
  assert.ok(gauge.ingestEventsPerSecond(t) > 20_000, `25 ms into the burst: ${gauge.ingestEventsPerSecond(t)}`);
  for (; t < t0 + 2_000; t += 0.5) pressure.add(100, t);
  const steady = gauge.ingestEventsPerSecond(t);
  assert.ok(Math.abs(steady - 200_000) < 2_000, `steady: ${steady}`);
  // A 50 ms pause inside the burst still counts as one.
  assert.ok(gauge.ingestEventsPerSecond(t + 50) > 100_000);
  // Half a second after the end it is calm again.
  assert.ok(gauge.ingestEventsPerSecond(t + 500) < 20_000, `after: ${gauge.ingestEventsPerSecond(t + 500)}`);
  // A single request is never a burst.
  const lone = new IngestPressure();
  lone.add(100, t0);
  assert.ok(new PressureGauge(lone.buffer, { aboveEventsPerSecond: 20_000, maxDeferMs: 5_000 }).ingestEventsPerSecond(t0) < 20_000);
});
