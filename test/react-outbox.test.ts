// The outbox on a real SQLite file: deliveries written in the anomaly's own transaction (all or nothing), filters,
// grouping with a cool-down per endpoint + entity + source (every kind, not one), and atomic claims: two threads
// claiming from one database never get the same delivery, and two dispatchers never send one twice.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../src/config.js';
import { SqliteAnomalyStore } from '../src/detect/anomaly-store.js';
import { createLogger } from '../src/obs/logger.js';
import { Dispatcher } from '../src/react/dispatcher.js';
import { SqliteOutboxStore } from '../src/react/outbox-store.js';
import { matchesFilters } from '../src/react/webhook.js';
import { openSqlite } from '../src/state/sqlite.js';
import { anomaly, endpoint, startReceiver } from './react-helpers.js';
import { waitFor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'causality-outbox-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let dbs = 0;
const freshDb = () => join(dir, `state-${++dbs}.db`);

test('deliveries are written in the transaction that stores the anomaly: replay adds none, a failure stores neither', async () => {
  const db = openSqlite(freshDb());
  const outbox = new SqliteOutboxStore(db, { groupWindowMs: 0 });
  await outbox.putEndpoint(endpoint({ id: 'all', url: 'http://127.0.0.1:9/a' }));
  await outbox.putEndpoint(endpoint({ id: 'critical-only', url: 'http://127.0.0.1:9/b', filters: { minSeverity: 'critical' } }));
  await outbox.putEndpoint(endpoint({ id: 'off', url: 'http://127.0.0.1:9/c', enabled: false }));
  const anomalies = new SqliteAnomalyStore(db, Date.now, (fresh, now) => void outbox.enqueueWithin(fresh, now));
  const a = anomaly({ severity: 'high' });
  const b = anomaly({ severity: 'critical' });
  assert.equal((await anomalies.insert([a, b])).length, 2);
  const rows = (await outbox.listDeliveries({})).items;
  assert.deepEqual(rows.map((d) => `${d.endpointId}:${d.anomalyId}`).sort(), [`all:${a.id}`, `all:${b.id}`, `critical-only:${b.id}`].sort());
  assert.ok(rows.every((d) => d.status === 'pending' && d.attempts === 0));

  // The detector replays after a restart: the anomalies exist, so no delivery is written again.
  assert.equal((await anomalies.insert([a, b])).length, 0);
  assert.equal((await outbox.listDeliveries({})).items.length, 3);

  // The outbox write fails mid-transaction: the anomaly is not stored either (no anomaly without its deliveries).
  const failing = new SqliteAnomalyStore(db, Date.now, (fresh, now) => {
    outbox.enqueueWithin(fresh, now);
    throw new Error('disk full');
  });
  const c = anomaly();
  await assert.rejects(failing.insert([c]), /disk full/);
  assert.equal(await anomalies.get(c.id), null);
  assert.equal((await outbox.listDeliveries({})).items.length, 3);
  db.close();
});

test('an endpoint change reaches a writer on another connection (endpoints version)', async () => {
  const path = freshDb();
  const api = new SqliteOutboxStore(openSqlite(path), { groupWindowMs: 0 });
  const detectorSide = new SqliteOutboxStore(openSqlite(path));
  assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 0);
  await api.putEndpoint(endpoint({ id: 'late', url: 'http://127.0.0.1:9/x' }));
  assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 1);
  await api.putEndpoint(endpoint({ id: 'late', url: 'http://127.0.0.1:9/x', enabled: false }));
  assert.equal((await detectorSide.enqueue([anomaly()])).created.length, 0);
});

test('filters: apps, minimum severity, severities, sources (prefix), categories, entity types', () => {
  const a = anomaly({ appId: 'shop', severity: 'high', source: 'model:markov', category: 'bot', entityType: 'session' });
  assert.ok(matchesFilters({}, a));
  assert.ok(matchesFilters({ appIds: ['shop'], minSeverity: 'medium', sources: ['model:*'], categories: ['bot'], entityTypes: ['session'] }, a));
  assert.ok(!matchesFilters({ appIds: ['other'] }, a));
  assert.ok(!matchesFilters({ minSeverity: 'critical' }, a));
  assert.ok(matchesFilters({ severities: ['low', 'high'] }, a));
  assert.ok(!matchesFilters({ severities: ['low'] }, a));
  assert.ok(!matchesFilters({ sources: ['rule:*', 'model:ema'] }, a));
  assert.ok(matchesFilters({ sources: ['model:markov'] }, a));
  assert.ok(!matchesFilters({ categories: ['fraud'] }, a));
  assert.ok(!matchesFilters({ entityTypes: ['device', 'user'] }, a));
});

test('grouping: a flood for one entity becomes one alert with a count; every source has its own cool-down', async () => {
  let now = 1_000_000;
  const db = openSqlite(freshDb());
  const outbox = new SqliteOutboxStore(db, { groupWindowMs: 10_000, now: () => now });
  await outbox.putEndpoint(endpoint({ id: 'ops', url: 'http://127.0.0.1:9/x' }));
  const flood = (source: string, entityId = 'dev-flood') => anomaly({ entityId, deviceId: entityId, source });

  const first = await outbox.enqueue([flood('rule:a')]);
  assert.equal(first.created.length, 1);
  assert.equal(first.created[0]!.nextAttemptAt, now, 'the first anomaly alerts at once');
  // Not yet sent: the next ones are counted into it.
  now += 10;
  const more = await outbox.enqueue([flood('rule:a'), flood('rule:a')]);
  assert.equal(more.grouped.length, 2);
  assert.equal((await outbox.getDelivery(first.created[0]!.deliveryId))!.anomalyCount, 3);

  // Another kind (source) for the same entity is not held back by rule:a's window; another entity neither.
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

  // After the windows pass, an anomaly alerts at once again.
  now += 60_000;
  const fresh = await outbox.enqueue([flood('rule:a')]);
  assert.equal(fresh.created[0]!.nextAttemptAt, now);
  db.close();
});

test("a crashed dispatcher's claim expires and is taken again; its late completion is refused", async () => {
  const db = openSqlite(freshDb());
  const outbox = new SqliteOutboxStore(db, { groupWindowMs: 0 });
  await outbox.putEndpoint(endpoint({ id: 'ep', url: 'http://127.0.0.1:9/x' }));
  await outbox.enqueue([anomaly()]);
  const t0 = Date.now();
  const crashed = await outbox.claim(t0, 1_000);
  assert.ok(crashed);
  assert.equal(await outbox.claim(t0 + 500, 1_000), null, 'held while the lease runs');
  const next = await outbox.claim(t0 + 1_001, 1_000);
  assert.equal(next!.id, crashed.id);
  assert.equal(next!.attempts, 2);
  assert.equal(await outbox.markDelivered(crashed, t0 + 1_100, 200), false, 'the old lease holder no longer owns it');
  assert.equal(await outbox.markDelivered(next!, t0 + 1_100, 200), true);
  assert.equal((await outbox.getDelivery(crashed.id))!.status, 'delivered');
  db.close();
});

test('claims are atomic: two threads claiming from one database never get the same delivery', async () => {
  const path = freshDb();
  const db = openSqlite(path);
  const outbox = new SqliteOutboxStore(db, { groupWindowMs: 0 });
  await outbox.putEndpoint(endpoint({ id: 'race', url: 'http://127.0.0.1:9/x' }));
  const N = 400;
  await outbox.enqueue(Array.from({ length: N }, () => anomaly()));
  const moduleUrl = new URL('../src/react/outbox-store.js', import.meta.url).href;
  const sqliteUrl = new URL('../src/state/sqlite.js', import.meta.url).href;
  // Each thread claims as fast as it can until nothing is left, and reports what it got.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { SqliteOutboxStore } = await import(workerData.moduleUrl);
      const { openSqlite } = await import(workerData.sqliteUrl);
      const store = new SqliteOutboxStore(openSqlite(workerData.path));
      // Start together: both threads are ready before either claims.
      parentPort.postMessage('ready');
      await new Promise((r) => parentPort.once('message', r));
      const got = [];
      for (;;) {
        const c = await store.claim(Date.now(), 60000);
        if (!c) break;
        got.push(c.id);
        // Let the other thread in between claims (SQLite's busy wait could otherwise starve it).
        await new Promise((r) => setTimeout(r, 0));
      }
      parentPort.postMessage(got);
    })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`;
  const workers = [0, 1].map(() => new Worker(code, { eval: true, workerData: { moduleUrl, sqliteUrl, path } }));
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
  const results = workers.map(
    (w) =>
      new Promise<string[]>((resolve, reject) => {
        w.once('message', (m) => (Array.isArray(m) ? resolve(m) : reject(new Error(m.error))));
        w.once('error', reject);
      }),
  );
  for (const w of workers) w.postMessage('go');
  const [a, b] = await Promise.all(results);
  const all = [...a, ...b];
  assert.equal(new Set(all).size, all.length, 'no delivery claimed twice');
  assert.equal(all.length, N, 'every delivery claimed once');
  assert.ok(a.length > 0 && b.length > 0, `both threads claimed (${a.length} / ${b.length})`);
  db.close();
});

test('two dispatchers on one database: every delivery sent once, none twice', async () => {
  const receiver = await startReceiver('test-webhook-secret-0123456789');
  const path = freshDb();
  const setupDb = openSqlite(path);
  const setup = new SqliteOutboxStore(setupDb, { groupWindowMs: 0 });
  await setup.putEndpoint(endpoint({ id: 'shared', url: receiver.url }));
  // The hook runs on the anomaly store's own connection (the same transaction).
  const anomalies = new SqliteAnomalyStore(setupDb, Date.now, (fresh, now) => void setup.enqueueWithin(fresh, now));
  const N = 300;
  await anomalies.insert(Array.from({ length: N }, () => anomaly()));
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const make = () => {
    const db = openSqlite(path);
    return new Dispatcher({
      store: new SqliteOutboxStore(db),
      anomalies: new SqliteAnomalyStore(db),
      workers: 4,
      timeoutMs: 2_000,
      maxAttempts: 5,
      backoff: { baseMs: 10, maxMs: 100 },
      pollMs: 50,
      log,
    });
  };
  const d1 = make();
  const d2 = make();
  d1.start();
  d2.start();
  await waitFor('every delivery recorded as delivered', async () => (await setup.stats()).delivered === N, 30_000);
  await d1.stop();
  await d2.stop();
  const dup = [...receiver.accepted.values()].filter((v) => v.length > 1);
  assert.deepEqual(dup, [], 'no delivery sent twice');
  assert.equal(receiver.requests.length, N);
  assert.ok(receiver.requests.every((r) => r.verified), 'every signature verifies');
  const st = await setup.stats();
  assert.deepEqual({ pending: st.pending, dead: st.dead, delivered: st.delivered }, { pending: 0, dead: 0, delivered: N });
  await receiver.close();
});

test('config: webhook endpoints from the YAML file (secret required), knobs with defaults, bad entries name the field', () => {
  const cfgDir = mkdtempSync(join(dir, 'cfg-'));
  const file = join(cfgDir, 'config.yaml');
  const base = 'adminKey: admin_12345678\nipSalt: salt_12345678\n';
  writeFileSync(
    file,
    `${base}webhookBackoffMax: 30s\nwebhooks:\n  - id: sec\n    url: https://hooks.example.com/a\n    secret: 0123456789abcdef0123\n    format: slack\n    filters: { minSeverity: high, sources: ["rule:*"] }\n`,
  );
  const { config } = loadConfig({ dataDir: cfgDir, configPath: file }, {});
  assert.equal(config.webhooks.length, 1);
  assert.equal(config.webhooks[0]!.format, 'slack');
  assert.deepEqual(config.webhooks[0]!.filters, { minSeverity: 'high', sources: ['rule:*'] });
  assert.equal(config.webhookBackoffMaxMs, 30_000);
  assert.equal(config.dispatcherWorkers, 4);
  assert.equal(config.webhookMaxAttempts, 12);
  assert.equal(config.webhookGroupWindowMs, 60_000);
  writeFileSync(file, `${base}webhooks:\n  - id: sec\n    url: https://hooks.example.com/a\n`);
  assert.throws(() => loadConfig({ dataDir: cfgDir, configPath: file }, {}), /webhooks\.0\.secret/);
  writeFileSync(file, base);
  assert.throws(() => loadConfig({ dataDir: cfgDir, configPath: file }, { CAUSALITY_WEBHOOKS: '[{"id":"x","url":"http://a/b","secret":"0123456789abcdef","filters":{"minSeverity":"huge"}}]' }), /CAUSALITY_WEBHOOKS: 0\.filters\.minSeverity/);
});
