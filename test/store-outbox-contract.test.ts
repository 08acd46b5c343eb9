// The webhook outbox's contract, run against SQLite and PostgreSQL alike: endpoints (API and config file), grouping,
// claims with leases, failures and held-back endpoints, dead letters and replay, listing, stats and pruning; and
// concurrent claims from two store instances (two connections / pools, as two processes) never take one delivery twice,
// and two dispatchers on their own connections send every delivery once.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLogger } from '../src/obs/logger.js';
import { Dispatcher } from '../src/react/dispatcher.js';
import type { ClaimedDelivery, FailureOutcome, OutboxStore } from '../src/react/outbox-store.js';
import { waitFor } from './helpers.js';
import { anomaly, endpoint, SECRET, startReceiver } from './react-helpers.js';
import { backends } from './store-backends.js';

const fail = (now: number, o: Partial<FailureOutcome> = {}): FailureOutcome => ({
  now,
  status: 500,
  error: 'HTTP 500',
  nextAttemptAt: now + 1_000,
  dead: false,
  endpointBlockedUntil: 0,
  ...o,
});

/** Claims until nothing is due; returns the claims in order. */
async function claimAll(store: OutboxStore, now: number, leaseMs = 60_000): Promise<ClaimedDelivery[]> {
  const out: ClaimedDelivery[] = [];
  for (let c = await store.claim(now, leaseMs); c; c = await store.claim(now, leaseMs)) out.push(c);
  return out;
}

for (const backend of backends()) {
  describe(`outbox on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('endpoints: put, get, list by id, delete cancels pending and dead deliveries; config sync adds, updates, removes its own only', async () => {
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 0 });
      await outbox.putEndpoint(endpoint({ id: 'b-api', url: 'http://127.0.0.1:9/b', description: 'by hand', maxPerMinute: 30 }));
      await outbox.putEndpoint(endpoint({ id: 'A-api', url: 'http://127.0.0.1:9/a', filters: { appIds: ['shop'], minSeverity: 'high' } }));
      assert.deepEqual((await outbox.listEndpoints()).map((e) => e.id), ['A-api', 'b-api']);
      assert.deepEqual(await outbox.getEndpoint('b-api'), endpoint({ id: 'b-api', url: 'http://127.0.0.1:9/b', description: 'by hand', maxPerMinute: 30 }));
      assert.deepEqual((await outbox.getEndpoint('A-api'))!.filters, { appIds: ['shop'], minSeverity: 'high' });
      assert.equal(await outbox.getEndpoint('nope'), null);

      await outbox.enqueue([anomaly(), anomaly()]);
      const [first] = await claimAll(outbox, Date.now());
      assert.ok(first);
      await outbox.markFailed(first, fail(Date.now(), { dead: true }));
      assert.equal(await outbox.deleteEndpoint('b-api'), true);
      assert.equal(await outbox.deleteEndpoint('b-api'), false);
      const statuses = (await outbox.listDeliveries({ endpointId: 'b-api' })).items.map((d) => d.status).sort();
      assert.deepEqual(statuses, ['cancelled', 'cancelled']);
      assert.equal(await outbox.endpointFailures('b-api'), 0, 'its health goes with it');

      const cfg = (id: string, url: string, o = {}) => endpoint({ id, url, origin: 'config', createdAt: 5, updatedAt: 5, ...o });
      await outbox.syncConfigEndpoints([cfg('c1', 'http://127.0.0.1:9/c1'), cfg('c2', 'http://127.0.0.1:9/c2')]);
      assert.deepEqual((await outbox.listEndpoints()).map((e) => `${e.id}:${e.origin}`), ['A-api:api', 'c1:config', 'c2:config']);
      await outbox.syncConfigEndpoints([cfg('c1', 'http://127.0.0.1:9/c1-moved', { createdAt: 99, updatedAt: 99 })]);
      const c1 = await outbox.getEndpoint('c1');
      assert.equal(c1!.url, 'http://127.0.0.1:9/c1-moved');
      assert.equal(c1!.createdAt, 5, 'an updated endpoint keeps its creation time');
      assert.deepEqual((await outbox.listEndpoints()).map((e) => e.id), ['A-api', 'c1'], 'c2 left the file; the API endpoint stays');
    });

    test('an endpoint change reaches a writer on another connection (endpoints version)', async () => {
      const db = await backend.fresh();
      const api = (await db.open({ groupWindowMs: 0 })).outbox;
      const detectorSide = (await db.open()).outbox;
      assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 0);
      await api.putEndpoint(endpoint({ id: 'late', url: 'http://127.0.0.1:9/x' }));
      assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 1);
      await api.putEndpoint(endpoint({ id: 'late', url: 'http://127.0.0.1:9/x', enabled: false }));
      assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 0);
    });

    test('grouping: a flood for one entity becomes one alert with a count; every source has its own cool-down', async () => {
      let now = 1_000_000;
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 10_000, now: () => now });
      await outbox.putEndpoint(endpoint({ id: 'ops', url: 'http://127.0.0.1:9/x' }));
      const flood = (source: string, entityId = 'dev-flood') => anomaly({ entityId, deviceId: entityId, source });

      const first = await outbox.enqueue([flood('rule:a')]);
      assert.equal(first.created.length, 1);
      assert.equal(first.created[0]!.nextAttemptAt, now, 'the first anomaly alerts at once');
      now += 10;
      const more = await outbox.enqueue([flood('rule:a'), flood('rule:a')]);
      assert.equal(more.grouped.length, 2);
      const grouped = (await outbox.getDelivery(first.created[0]!.deliveryId))!;
      assert.equal(grouped.anomalyCount, 3);
      assert.deepEqual(grouped.anomalyIds, [first.created[0]!.anomalyId, ...more.grouped.map((g) => g.anomalyId)]);

      const other = await outbox.enqueue([flood('model:markov'), flood('rule:a', 'dev-other')]);
      assert.equal(other.created.length, 2);
      assert.ok(other.created.every((c) => c.nextAttemptAt === now));

      // Once the first alert is claimed (sent), the rest of its window waits for the window's end, as one alert.
      const claimed = await outbox.claim(now, 5_000);
      assert.equal(claimed!.id, first.created[0]!.deliveryId);
      assert.equal(claimed!.anomalyCount, 3);
      now += 100;
      const later = await outbox.enqueue([flood('rule:a')]);
      assert.equal(later.created.length, 1);
      assert.equal(later.created[0]!.nextAttemptAt, 1_000_000 + 10_000, 'deferred to the end of the window');
      const evenLater = await outbox.enqueue([flood('rule:a'), flood('rule:a')]);
      assert.equal(evenLater.grouped.length, 2);
      assert.equal((await outbox.getDelivery(later.created[0]!.deliveryId))!.anomalyCount, 3);

      now += 60_000;
      const fresh = await outbox.enqueue([flood('rule:a')]);
      assert.equal(fresh.created[0]!.nextAttemptAt, now);
      assert.ok((await outbox.prune(0, now)) === 0, 'nothing delivered to prune; expired windows go');
      const afterPrune = await outbox.enqueue([flood('rule:a')]);
      assert.equal(afterPrune.grouped.length, 1, 'the live window survives pruning');
    });

    test("a crashed dispatcher's claim expires and is taken again; its late completion is refused", async () => {
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 0 });
      await outbox.putEndpoint(endpoint({ id: 'ep', url: 'http://127.0.0.1:9/x' }));
      await outbox.enqueue([anomaly()]);
      const t0 = Date.now();
      const crashed = await outbox.claim(t0, 1_000);
      assert.ok(crashed);
      assert.equal(crashed.attempts, 1);
      assert.equal(await outbox.nextDueAt(), t0 + 1_000, 'due again when the lease ends');
      assert.equal(await outbox.claim(t0 + 500, 1_000), null, 'held while the lease runs');
      const next = await outbox.claim(t0 + 1_001, 1_000);
      assert.equal(next!.id, crashed.id);
      assert.equal(next!.attempts, 2);
      assert.equal(await outbox.markDelivered(crashed, t0 + 1_100, 200), false, 'the old lease holder no longer owns it');
      assert.equal(await outbox.markDelivered(next!, t0 + 1_100, 200), true);
      const d = (await outbox.getDelivery(crashed.id))!;
      assert.deepEqual({ status: d.status, lastStatus: d.lastStatus, deliveredAt: d.deliveredAt }, { status: 'delivered', lastStatus: 200, deliveredAt: t0 + 1_100 });
      assert.equal(await outbox.nextDueAt(), null);
    });

    test('failures: a failing endpoint is probed one delivery at a time and held while blocked; success releases its backlog', async () => {
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 0 });
      await outbox.putEndpoint(endpoint({ id: 'down', url: 'http://127.0.0.1:9/x' }));
      await outbox.putEndpoint(endpoint({ id: 'up', url: 'http://127.0.0.1:9/y', filters: { appIds: ['other'] } }));
      const t = Date.now() + 1_000_000;
      await outbox.enqueue([anomaly(), anomaly(), anomaly()]);
      const c1 = (await outbox.claim(t, 10_000))!;
      assert.equal(await outbox.markFailed(c1, fail(t, { nextAttemptAt: t + 2_000, endpointBlockedUntil: t + 1_000 })), true);
      assert.equal(await outbox.endpointFailures('down'), 1);
      assert.equal(await outbox.claim(t + 500, 10_000), null, 'the endpoint is held');
      assert.equal(await outbox.nextDueAt(), t + 1_000);
      // Held time over: one probe; the others wait for its outcome.
      const probe = (await outbox.claim(t + 1_000, 10_000))!;
      assert.notEqual(probe.id, c1.id, 'the failed one waits out its own backoff');
      assert.equal(await outbox.claim(t + 1_000, 10_000), null, 'one probe at a time');
      // A graceful stop gives the probe back (the hold it set goes with it).
      await outbox.release(probe);
      const again = (await outbox.claim(t + 1_001, 10_000))!;
      assert.equal(again.id, probe.id);
      assert.equal(again.attempts, 2, 'a released attempt still counts');
      assert.equal(await outbox.markDelivered(again, t + 1_100, 204), true);
      assert.equal(await outbox.endpointFailures('down'), 0);
      // The endpoint answered: the failed delivery goes now, not at the end of its backoff.
      const rest = await claimAll(outbox, t + 1_200);
      assert.deepEqual(rest.map((c) => c.id).sort(), [c1.id, (await outbox.listDeliveries({ status: 'pending' })).items.find((d) => d.id !== c1.id)!.id].sort());
    });

    test('maxPerMinute spaces one endpoint\'s claims; others are not held', async () => {
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 0 });
      await outbox.putEndpoint(endpoint({ id: 'capped', url: 'http://127.0.0.1:9/x', maxPerMinute: 60, filters: { appIds: ['shop'] } }));
      await outbox.putEndpoint(endpoint({ id: 'free', url: 'http://127.0.0.1:9/y', filters: { appIds: ['food'] } }));
      await outbox.enqueue([anomaly(), anomaly(), anomaly({ appId: 'food' }), anomaly({ appId: 'food' })]);
      const t = Date.now() + 1_000_000;
      const got = await claimAll(outbox, t);
      assert.deepEqual(got.map((c) => c.endpointId).sort(), ['capped', 'free', 'free']);
      assert.equal(await outbox.claim(t + 999, 60_000), null, 'one interval at the earliest');
      // (PostgreSQL counts the interval from when the claim ran, a few ms after `t`.)
      assert.equal((await outbox.claim(t + 5_000, 60_000))!.endpointId, 'capped');
    });

    test('dead letters: listed by filter with cursor paging, replayed with the same id and fresh attempts; stats; prune', async () => {
      const { outbox } = await (await backend.fresh()).open({ groupWindowMs: 0 });
      await outbox.putEndpoint(endpoint({ id: 'ep', url: 'http://127.0.0.1:9/x' }));
      const t = Date.now() + 1_000_000;
      await outbox.enqueue(Array.from({ length: 5 }, (_, i) => anomaly({ appId: i < 3 ? 'shop' : 'food' })));
      assert.equal((await outbox.stats()).pending, 5);
      const claims = await claimAll(outbox, t);
      assert.equal(claims.length, 5);
      for (const c of claims.slice(0, 3)) await outbox.markFailed(c, fail(t, { dead: true, status: null, error: 'x'.repeat(2_000) }));
      for (const c of claims.slice(3)) await outbox.markDelivered(c, t, 200);
      const st = await outbox.stats();
      assert.deepEqual(st, { pending: 0, dead: 3, delivered: 2, oldestPendingAt: null });
      const dead = (await outbox.listDeliveries({ status: 'dead' })).items;
      assert.equal(dead.length, 3);
      assert.ok(dead.every((d) => d.lastError!.length === 500 && d.lastStatus === null));

      // Newest first, pages of 2, every row once.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: { id: string }[]; nextCursor: string | null } = await outbox.listDeliveries({ endpointId: 'ep' }, { limit: 2, cursor });
        seen.push(...page.items.map((d) => d.id));
        cursor = page.nextCursor;
      } while (cursor);
      assert.equal(seen.length, 5);
      assert.equal(new Set(seen).size, 5);
      const all = (await outbox.listDeliveries({}, { limit: 10 })).items;
      assert.deepEqual(seen, all.map((d) => d.id));
      assert.ok(all[0]!.createdAt >= all[4]!.createdAt);
      await assert.rejects(outbox.listDeliveries({}, { cursor: 'garbage!' }), /cursor/);

      const shopDead = (await outbox.listDeliveries({ status: 'dead', appId: 'shop' })).items;
      assert.equal(await outbox.replay({ deliveryId: shopDead[0]!.id }, t + 10), 1);
      assert.equal(await outbox.replay({ appId: 'shop', endpointId: 'ep' }, t + 10), 2);
      assert.equal(await outbox.replay({}, t + 10), 0, 'nothing dead left');
      const replayed = await claimAll(outbox, t + 10);
      assert.deepEqual(replayed.map((c) => c.id).sort(), shopDead.map((d) => d.id).sort(), 'the same delivery ids');
      assert.ok(replayed.every((c) => c.attempts === 1));

      assert.equal(await outbox.prune(t + 1, t), 2, 'delivered rows older than the cut go');
      assert.equal((await outbox.stats()).delivered, 0);
    });

    test('claims from two store instances (two connections, as two processes) never return the same delivery', async () => {
      const db = await backend.fresh();
      const setup = (await db.open({ groupWindowMs: 0 })).outbox;
      await setup.putEndpoint(endpoint({ id: 'race-1', url: 'http://127.0.0.1:9/x' }));
      await setup.putEndpoint(endpoint({ id: 'race-2', url: 'http://127.0.0.1:9/y' }));
      const N = 150;
      await setup.enqueue(Array.from({ length: N }, () => anomaly()));
      const [one, two] = [(await db.open()).outbox, (await db.open()).outbox];
      // Three claimers per instance, all at once, until nothing is left.
      const claimer = async (store: OutboxStore) => {
        const got: string[] = [];
        for (let c = await store.claim(Date.now(), 60_000); c; c = await store.claim(Date.now(), 60_000)) got.push(c.id);
        return got;
      };
      const results = await Promise.all([one, one, one, two, two, two].map(claimer));
      const all = results.flat();
      assert.equal(new Set(all).size, all.length, 'no delivery claimed twice');
      assert.equal(all.length, 2 * N, 'every delivery claimed once');
      const byInstance = [results.slice(0, 3).flat().length, results.slice(3).flat().length];
      assert.ok(byInstance.every((n) => n > 0), `both instances claimed (${byInstance.join(' / ')})`);
    });

    test('a failing endpoint gets one probe at a time even when two instances claim at once', async () => {
      const db = await backend.fresh();
      const setup = (await db.open({ groupWindowMs: 0 })).outbox;
      await setup.putEndpoint(endpoint({ id: 'flaky', url: 'http://127.0.0.1:9/x' }));
      await setup.enqueue(Array.from({ length: 10 }, () => anomaly()));
      const t = Date.now() + 1_000_000;
      const c = (await setup.claim(t, 1_000))!;
      await setup.markFailed(c, fail(t, { nextAttemptAt: t + 60_000, endpointBlockedUntil: t + 10 }));
      const [one, two] = [(await db.open()).outbox, (await db.open()).outbox];
      const got = (await Promise.all([one, two, one, two, one, two].map((s) => s.claim(t + 20, 10_000)))).filter((x) => x !== null);
      assert.equal(got.length, 1, `one probe, got ${got.length}`);
    });

    test('two dispatchers on their own connections (as two processes): every delivery sent once, none twice', async () => {
      const receiver = await startReceiver(SECRET);
      const db = await backend.fresh();
      const setup = await db.open({ groupWindowMs: 0 });
      await setup.outbox.putEndpoint(endpoint({ id: 'shared', url: receiver.url }));
      const N = 200;
      await setup.anomaliesWithOutbox().insert(Array.from({ length: N }, () => anomaly()));
      const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
      const make = async () => {
        const own = await db.open();
        return new Dispatcher({ store: own.outbox, anomalies: own.anomalies, workers: 4, timeoutMs: 2_000, maxAttempts: 5, backoff: { baseMs: 10, maxMs: 100 }, pollMs: 50, log });
      };
      const [d1, d2] = [await make(), await make()];
      d1.start();
      d2.start();
      await waitFor('every delivery recorded as delivered', async () => (await setup.outbox.stats()).delivered === N, 60_000);
      await d1.stop();
      await d2.stop();
      const dup = [...receiver.accepted.values()].filter((v) => v.length > 1);
      assert.deepEqual(dup, [], 'no delivery sent twice');
      assert.equal(receiver.requests.length, N);
      assert.ok(receiver.requests.every((r) => r.verified), 'every signature verifies');
      const st = await setup.outbox.stats();
      assert.deepEqual({ pending: st.pending, dead: st.dead, delivered: st.delivered }, { pending: 0, dead: 0, delivered: N });
      await receiver.close();
    });
  });
}
