// The dispatcher against real local receivers: one failing the first N times, one that hangs (timeout → retries →
// dead letter → replay), one answering 429 with Retry-After, one down for a while and back (held back as a whole,
// then its backlog goes at once), a stop mid-send (the claim is given back), and the Slack format. Every request's
// signature is verified by the receiver. On the SQLite and the PostgreSQL outbox alike.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../src/obs/logger.js';
import { createReactMetrics, Dispatcher } from '../src/react/dispatcher.js';
import { backoffMs, parseRetryAfter, signDelivery, verifyDelivery } from '../src/react/webhook.js';
import { waitFor } from './helpers.js';
import { anomaly, endpoint, SECRET, startReceiver, type Receiver } from './react-helpers.js';
import { backends, type Backend } from './store-backends.js';

/** A state store with one endpoint at `url`, an anomaly store writing deliveries, and a dispatcher factory. */
async function rig(backend: Backend, url: string, o: { format?: 'json' | 'slack'; maxAttempts?: number; timeoutMs?: number; workers?: number; maxPerMinute?: number } = {}) {
  const state = await (await backend.fresh()).open({ groupWindowMs: 0 });
  const outbox = state.outbox;
  await outbox.putEndpoint(endpoint({ id: 'ep', url, format: o.format ?? 'json', maxPerMinute: o.maxPerMinute ?? null }));
  const anomalies = state.anomaliesWithOutbox();
  const registry = new Registry();
  const metrics = createReactMetrics(registry);
  const dispatcher = () =>
    new Dispatcher({
      store: outbox,
      anomalies,
      workers: o.workers ?? 2,
      timeoutMs: o.timeoutMs ?? 2_000,
      maxAttempts: o.maxAttempts ?? 10,
      backoff: { baseMs: 20, maxMs: 200 },
      pollMs: 50,
      log: createLogger('silent'),
      metrics,
    });
  return { outbox, anomalies, dispatcher, registry, close: () => state.close() };
}

const attemptsOf = async (registry: Registry) =>
  Object.fromEntries(((await registry.getSingleMetric('causality_webhook_attempts_total')!.get()).values).map((v) => [v.labels.outcome, v.value]));

test('signatures: sha256 HMAC over "<timestamp>.<body>", checked with a tolerance; backoff grows with jitter and a cap; Retry-After forms', () => {
  const body = '{"a":1}';
  const ts = Math.floor(Date.now() / 1000);
  const sig = signDelivery(SECRET, ts, body);
  assert.match(sig, /^sha256=[0-9a-f]{64}$/);
  assert.ok(verifyDelivery(SECRET, { signature: sig, timestamp: String(ts) }, body));
  assert.ok(!verifyDelivery(SECRET, { signature: sig, timestamp: String(ts) }, '{"a":2}'), 'another body');
  assert.ok(!verifyDelivery('another-secret-0123456789', { signature: sig, timestamp: String(ts) }, body), 'another secret');
  assert.ok(!verifyDelivery(SECRET, { signature: signDelivery(SECRET, ts - 3600, body), timestamp: String(ts - 3600) }, body), 'too old');
  const p = { baseMs: 100, maxMs: 1_000 };
  assert.equal(backoffMs(1, p, () => 0), 50);
  assert.equal(backoffMs(1, p, () => 0.999999), 100);
  assert.equal(backoffMs(3, p, () => 0.999999), 400);
  assert.equal(backoffMs(20, p, () => 0.999999), 1_000);
  assert.equal(parseRetryAfter('2'), 2_000);
  assert.equal(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString(), Date.now())! > 3_000, true);
  assert.equal(parseRetryAfter('soon'), null);
});

for (const backend of backends()) {
  describe(`delivery on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('a receiver failing the first 3 times gets the 4th attempt: same delivery id, signed each time', async () => {
      let calls = 0;
      const receiver = await startReceiver(SECRET, () => (++calls <= 3 ? { status: 500 } : { status: 200 }));
      const r = await rig(backend, receiver.url);
      const [a] = await r.anomalies.insert([anomaly()]);
      const d = r.dispatcher();
      d.start();
      await waitFor('recorded as delivered', async () => (await r.outbox.stats()).delivered === 1);
      await d.stop();
      assert.equal(receiver.requests.length, 4);
      assert.deepEqual(receiver.requests.map((q) => q.attempt), [1, 2, 3, 4]);
      assert.equal(new Set(receiver.requests.map((q) => q.deliveryId)).size, 1, 'one delivery id across retries');
      assert.ok(receiver.requests.every((q) => q.verified));
      assert.equal(new Set(receiver.requests.map((q) => q.raw)).size, 1, 'the same body every time');
      const body = receiver.requests[3]!.body;
      assert.equal(body.deliveryId, receiver.requests[0]!.deliveryId);
      assert.equal(body.anomaly.id, a!.id);
      assert.equal(body.anomaly.explanation, a!.explanation);
      assert.equal(body.anomaly.status, undefined, 'no mutable fields: every retry sends the same bytes');
      assert.deepEqual(body.group, { count: 1, anomalyIds: [a!.id], lastTs: new Date(a!.ts).toISOString(), truncated: false });
      const stored = await r.outbox.getDelivery(body.deliveryId);
      assert.equal(stored!.status, 'delivered');
      assert.equal(stored!.attempts, 4);
      assert.deepEqual(await attemptsOf(r.registry), { http_error: 3, delivered: 1 });
      await receiver.close();
      await r.close();
    });

    test('a receiver that hangs: each attempt times out, the delivery becomes a dead letter, a replay delivers it (same id)', async () => {
      let hang = true;
      const receiver = await startReceiver(SECRET, () => (hang ? 'hang' : { status: 204 }));
      const r = await rig(backend, receiver.url, { maxAttempts: 3, timeoutMs: 150 });
      await r.anomalies.insert([anomaly()]);
      const d = r.dispatcher();
      d.start();
      const dead = await waitFor('a dead letter', async () => (await r.outbox.listDeliveries({ status: 'dead' })).items[0], 10_000);
      assert.equal(dead.attempts, 3);
      assert.match(dead.lastError!, /no answer within 150 ms/);
      assert.equal(receiver.requests.length, 3);
      assert.deepEqual(await attemptsOf(r.registry), { timeout: 3 });
      hang = false;
      assert.equal(await r.outbox.replay({ deliveryId: dead.id }, Date.now()), 1);
      d.wake();
      await waitFor('replayed delivery recorded', async () => (await r.outbox.getDelivery(dead.id))!.status === 'delivered');
      assert.deepEqual([...receiver.accepted.keys()], [dead.id]);
      await d.stop();
      await receiver.close();
      await r.close();
    });

    test('429 with Retry-After: the next attempt waits at least that long, and the endpoint is held meanwhile', async () => {
      let first = true;
      const receiver = await startReceiver(SECRET, () => {
        if (first) {
          first = false;
          return { status: 429, headers: { 'retry-after': '1' } };
        }
        return { status: 200 };
      });
      const r = await rig(backend, receiver.url, { workers: 1 });
      await r.anomalies.insert([anomaly()]);
      const d = r.dispatcher();
      d.start();
      await waitFor('the 429', () => receiver.requests.length === 1);
      // Another anomaly for the same endpoint meanwhile: held back with the rest of the endpoint until Retry-After passes.
      await r.anomalies.insert([anomaly()]);
      d.wake();
      await waitFor('both recorded as delivered', async () => (await r.outbox.stats()).delivered === 2, 10_000);
      await d.stop();
      const [rateLimited, ...rest] = receiver.requests;
      for (const q of rest) assert.ok(q.at - rateLimited!.at >= 950, `a request ${q.at - rateLimited!.at} ms after the 429`);
      assert.deepEqual(await attemptsOf(r.registry), { rate_limited: 1, delivered: 2 });
      await receiver.close();
      await r.close();
    });

    test('a receiver down for a while: one probe at a time, no dead letters, the whole backlog goes once it is back', async () => {
      const receiver = await startReceiver(SECRET);
      await receiver.down();
      const r = await rig(backend, receiver.url, { maxAttempts: 50, workers: 4 });
      const N = 60;
      await r.anomalies.insert(Array.from({ length: N }, () => anomaly()));
      const d = r.dispatcher();
      d.start();
      await waitFor('a few failed probes', async () => ((await attemptsOf(r.registry)).network_error ?? 0) >= 4);
      const attemptsWhileDown = (await attemptsOf(r.registry)).network_error!;
      await receiver.up();
      await waitFor('the whole backlog recorded as delivered', async () => (await r.outbox.stats()).delivered === N, 15_000);
      await d.stop();
      assert.ok([...receiver.accepted.values()].every((v) => v.length === 1), 'each delivered once');
      assert.ok(receiver.requests.every((q) => q.verified));
      const st = await r.outbox.stats();
      assert.equal(st.dead, 0);
      assert.equal(st.pending, 0);
      // Held back as a whole: far fewer attempts than deliveries × retries while it was down.
      assert.ok(attemptsWhileDown < N, `${attemptsWhileDown} attempts while down for ${N} deliveries`);
      await receiver.close();
      await r.close();
    });

    test('an endpoint capped at maxPerMinute gets its requests evenly spaced, whatever the number of workers', async () => {
      const receiver = await startReceiver(SECRET);
      const r = await rig(backend, receiver.url, { workers: 4, maxPerMinute: 600 });
      await r.anomalies.insert(Array.from({ length: 5 }, () => anomaly()));
      const d = r.dispatcher();
      d.start();
      await waitFor('all recorded as delivered', async () => (await r.outbox.stats()).delivered === 5, 10_000);
      await d.stop();
      const at = receiver.requests.map((q) => q.at);
      // Sends are spaced at dispatch; arrivals carry scheduling jitter (on a loaded machine one arrival can lag by
      // tens of ms and bunch with the next), so check the pace over all five: 400 ms when capped, less than 100 ms of
      // it lost to jitter, against a few milliseconds for an uncapped dispatcher.
      assert.equal(at.length, 5);
      const span = at[4]! - at[0]!;
      assert.ok(span >= 300, `five requests within ${span} ms (cap: one per 100 ms, so about 400 ms)`);
      await receiver.close();
      await r.close();
    });

    test('stopping mid-send gives the claim back: the next dispatcher sends the same delivery id', async () => {
      let hang = true;
      const receiver = await startReceiver(SECRET, () => (hang ? 'hang' : { status: 200 }));
      const r = await rig(backend, receiver.url, { timeoutMs: 30_000 });
      await r.anomalies.insert([anomaly()]);
      const d1 = r.dispatcher();
      d1.start();
      await waitFor('in flight', () => receiver.requests.length === 1);
      const id = receiver.requests[0]!.deliveryId;
      await d1.stop();
      const row = await r.outbox.getDelivery(id);
      assert.equal(row!.status, 'pending');
      hang = false;
      const d2 = r.dispatcher();
      d2.start();
      await waitFor('sent again and recorded', async () => (await r.outbox.stats()).delivered === 1);
      await d2.stop();
      assert.equal([...receiver.accepted.keys()][0], id);
      assert.equal(receiver.requests[1]!.attempt, 2, 'the interrupted send counts as an attempt');
      await receiver.close();
      await r.close();
    });

    test('Slack format: an incoming-webhook message with text and blocks, the delivery id in its context', async () => {
      const receiver: Receiver = await startReceiver(SECRET);
      const r = await rig(backend, receiver.url, { format: 'slack' });
      const [a] = await r.anomalies.insert([anomaly({ severity: 'critical', explanation: 'x < y & z' })]);
      const d = r.dispatcher();
      d.start();
      await waitFor('delivered', () => receiver.accepted.size === 1);
      await d.stop();
      const q = receiver.requests[0]!;
      assert.ok(q.verified);
      assert.match(q.body.text, /CRITICAL brute_force on device/);
      assert.match(q.body.text, /x &lt; y &amp; z/);
      assert.equal(q.body.blocks[0].type, 'section');
      assert.ok(JSON.stringify(q.body.blocks).includes(a!.id));
      assert.ok(JSON.stringify(q.body.blocks).includes(`delivery ${q.deliveryId}`));
      await receiver.close();
      await r.close();
    });
  });
}
