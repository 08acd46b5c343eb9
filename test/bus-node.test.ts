// A whole node on each bus: HTTP ingest → the embedded log (threads served over a MessagePort) or a JetStream stream
// (CAUSALITY_BUS: the sink and detector threads bound to their durable consumers) → Parquet → SQL; a restart resumes
// from the committed positions without duplicates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { JetStreamBus } from '../src/bus/jetstream-bus.js';
import { startTestNode } from './helpers.js';

const NATS_SERVERS = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

for (const kind of ['embedded', 'nats'] as const) test(`a node on the ${kind} bus stores every acknowledged event once, across a restart`, async () => {
  const stream = `TEST_NODE_${process.pid}_${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = kind === 'nats' ? { CAUSALITY_BUS: NATS_SERVERS, CAUSALITY_BUS_STREAM: stream } : {};
  let t = await startTestNode(env);
  const dataDir = t.dataDir;
  try {
    const health = await t.get<{ bus: { kind: string } }>('/healthz');
    assert.equal(health.body.bus.kind, kind);
    const batch = (n: number) => ({ events: Array.from({ length: n }, (_, i) => ({ eventId: randomUUID(), deviceId: `dev-${i % 3}`, screenView: { screenName: 'Home' } })) });
    const first = batch(30);
    assert.equal((await t.post('/v1/events/batch', first, { key: t.keys.appA })).status, 202);
    const single = { eventId: randomUUID(), deviceId: 'dev-9', screenView: { screenName: 'Settings' } };
    assert.equal((await t.post('/v1/events/ingest', single, { key: t.keys.appA })).status, 202);
    await t.node.flush();
    const count = async (): Promise<number> => Number((await t.sql('SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events')).rows[0]![0]);
    assert.equal(await count(), 31);
    assert.equal(t.node.sink.committedOffset, t.node.bus.endOffset());

    await t.stop();
    t = await startTestNode(env, { dataDir });
    const second = batch(12);
    assert.equal((await t.post('/v1/events/batch', second, { key: t.keys.appA })).status, 202);
    await t.node.flush();
    const r = await t.sql('SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events');
    assert.deepEqual(r.rows[0]!.map(Number), [43, 43]);
  } finally {
    await t.close();
    if (kind === 'nats') await JetStreamBus.deleteStream(NATS_SERVERS, stream);
  }
});
