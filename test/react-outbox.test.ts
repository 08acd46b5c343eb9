// The outbox on a real SQLite file: atomic claims when two threads claim from one database file; alert filters; the
// webhook configuration. (The outbox's contract on SQLite and PostgreSQL: store-outbox-contract.test.ts.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../src/config.js';
import { SqliteOutboxStore } from '../src/react/outbox-store.js';
import { matchesFilters } from '../src/react/webhook.js';
import { openSqlite } from '../src/state/sqlite.js';
import { anomaly, endpoint } from './react-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'causality-outbox-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let dbs = 0;
const freshDb = () => join(dir, `state-${++dbs}.db`);

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
