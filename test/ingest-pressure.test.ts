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
  const pressure = new IngestPressure(20);
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
    pressure.close();
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
});
