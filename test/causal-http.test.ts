// Causal HTTP API through Fastify inject with the real authenticator: series, changes (idempotent), webhooks with
// signatures, incidents opened by a crash with ranked candidates, impact, app isolation, and the SQL scheduler; on the
// SQLite and the PostgreSQL causal store alike (the store's contract through its users).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { installErrorHandler } from '../src/http/errors.js';
import { createAuthenticator } from '../src/ingest/edge.js';
import { registerCausalRoutes } from '../src/causal/routes.js';
import { SeriesScheduler } from '../src/causal/scheduler.js';
import type { CausalStore } from '../src/causal/store.js';
import { syntheticSeries } from '../src/causal/synthetic.js';
import { BASE_ENV, TEST_KEYS } from './helpers.js';
import { backends } from './store-backends.js';

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/causal/${name}.json`, import.meta.url), 'utf8');
const A = { 'x-api-key': TEST_KEYS.appA };
const B = { 'x-api-key': TEST_KEYS.appB };
const ADMIN = { 'x-api-key': TEST_KEYS.admin };

for (const backend of backends()) describe(`causal HTTP API on ${backend.name}`, () => {
  let app: FastifyInstance;
  let store: CausalStore;
  let dir: string;
  const sqlCalls: Array<[string, string | undefined]> = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causal-http-'));
    const { config } = loadConfig({ dataDir: dir }, BASE_ENV);
    store = (await (await backend.fresh()).open()).causal;
    app = Fastify();
    installErrorHandler(app);
    registerCausalRoutes(app, {
      authenticate: createAuthenticator(config),
      store,
      runSql: async (sql, appId) => {
        sqlCalls.push([sql, appId]);
        return { columns: ['ts', 'value'], rows: [] };
      },
      webhookSecrets: { github: 'gh-secret' },
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await backend.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('series: push one point or many (with segment labels), list, read; bad input is a 400', async () => {
    let r = await app.inject({ method: 'POST', url: '/v1/series/signups', headers: A, payload: { timestamp: '2025-03-01T00:00:00Z', value: 5 } });
    assert.equal(r.statusCode, 202, r.body);
    r = await app.inject({ method: 'POST', url: '/v1/series/signups', headers: A, payload: { points: [{ timestamp: Date.parse('2025-03-01T01:00:00Z'), value: 7 }, { timestamp: '2025-03-01T01:00:00Z', value: 3, labels: { platform: 'android' } }] } });
    assert.equal(r.json().accepted, 2);
    assert.deepEqual(r.json().incidentsOpened, []);
    r = await app.inject({ method: 'GET', url: '/v1/series/signups?from=2025-03-01T00:30:00Z', headers: A });
    assert.deepEqual(r.json().points, [{ timestamp: '2025-03-01T01:00:00.000Z', value: 7 }]);
    r = await app.inject({ method: 'GET', url: '/v1/series/signups?segment=platform%3Dandroid', headers: A });
    assert.deepEqual(r.json().points, [{ timestamp: '2025-03-01T01:00:00.000Z', value: 3 }]);
    r = await app.inject({ method: 'GET', url: '/v1/series', headers: A });
    assert.deepEqual(r.json().series.map((s: { name: string; points: number; segments: string[]; kind: string }) => [s.name, s.points, s.segments, s.kind]), [['signups', 3, ['platform=android'], 'pushed']]);
    for (const [payload, field] of [
      [{ points: [{ timestamp: 'yesterday', value: 1 }] }, 'points.0.timestamp'],
      [{ points: [{ timestamp: 1, value: 'x' }] }, 'points.0.value'],
    ] as const) {
      r = await app.inject({ method: 'POST', url: '/v1/series/signups', headers: A, payload });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.field, field);
    }
    r = await app.inject({ method: 'POST', url: '/v1/series/bad name', headers: A, payload: { timestamp: 1, value: 1 } });
    assert.equal(r.statusCode, 400);
  });

  test('app isolation: another app sees nothing, asking for it is a 403, no key is a 401', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/v1/series/signups', headers: B })).statusCode, 404);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/series', headers: B })).json().series, []);
    const r = await app.inject({ method: 'GET', url: '/v1/series/signups?app_id=appA', headers: B });
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().error.code, 'forbidden_app');
    assert.equal((await app.inject({ method: 'GET', url: '/v1/series?app_id=appA', headers: ADMIN })).json().series.length, 1);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/changes' })).statusCode, 401);
  });

  test('changes: idempotent on the client id, listed by time, batch answers per change', async () => {
    const body = { id: 'deploy-42', service: 'checkout', version: '4.2.0', title: 'hotfix: checkout payment timeout', time: '2025-03-10T09:00:00Z', paths: ['android/checkout/Pay.kt'] };
    let r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: body });
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.json().change.risk.level, 'HIGH');
    r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { ...body, title: 'something else' } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().created, false);
    assert.equal(r.json().change.title, body.title, 'the first write wins');
    r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { changes: [{ id: 'docs-1', title: 'docs: typo', time: '2025-03-10T08:50:00Z', paths: ['README.md'] }, { id: 'deploy-42' }] } });
    assert.deepEqual(r.json().results, [{ id: 'docs-1', created: true }, { id: 'deploy-42', created: false }]);
    r = await app.inject({ method: 'GET', url: '/v1/changes?from=2025-03-10T08:55:00Z&to=2025-03-11', headers: A });
    assert.deepEqual(r.json().changes.map((c: { id: string }) => c.id), ['deploy-42']);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/changes', headers: B })).json().changes, []);
    r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { title: 'x', time: 'not a time' } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'time');
    // PostgreSQL text holds no NUL: refused with the field named, on every store (not a 500 on one of them).
    r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { id: 'deploy\u0000x', title: 'x' } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'id');
    r = await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { changes: [{ id: 'ok-1', title: 'fine' }, { title: 'bad\u0000title' }] } });
    assert.equal(r.statusCode, 400);
    assert.match(r.json().error.field, /title/);
  });

  test('webhooks: GitHub needs a valid signature; Slack handshake; key in the query string', async () => {
    const raw = fixture('github-push');
    const sig = 'sha256=' + createHmac('sha256', 'gh-secret').update(raw).digest('hex');
    const h = { 'content-type': 'application/json', 'x-github-event': 'push' };
    let r = await app.inject({ method: 'POST', url: '/v1/changes/webhooks/github', headers: { ...h, ...A, 'x-hub-signature-256': 'sha256=00' }, payload: raw });
    assert.equal(r.statusCode, 401, r.body);
    r = await app.inject({ method: 'POST', url: `/v1/changes/webhooks/github?key=${TEST_KEYS.appA}`, headers: { ...h, 'x-hub-signature-256': sig }, payload: raw });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().results.map((x: { created: boolean; risk: string }) => [x.created, x.risk]), [[true, 'HIGH'], [true, 'LOW']]);
    r = await app.inject({ method: 'POST', url: `/v1/changes/webhooks/github?key=${TEST_KEYS.appA}`, headers: { ...h, 'x-hub-signature-256': sig }, payload: raw });
    assert.deepEqual(r.json().results.map((x: { created: boolean }) => x.created), [false, false], 'redelivery is a no-op');
    r = await app.inject({ method: 'POST', url: '/v1/changes/webhooks/slack', headers: { 'content-type': 'application/json' }, payload: fixture('slack-url-verification') });
    assert.deepEqual(r.json(), { challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
    r = await app.inject({ method: 'POST', url: '/v1/changes/webhooks/jenkins', headers: { 'content-type': 'application/json', ...B }, payload: fixture('jenkins-build-finalized') });
    assert.equal(r.json().results[0].id, 'jenkins:deploy-checkout#87');
    r = await app.inject({ method: 'POST', url: '/v1/changes/webhooks/gitlab', headers: { 'content-type': 'application/json', ...A }, payload: '{}' });
    assert.equal(r.statusCode, 404);
    r = await app.inject({ method: 'POST', url: '/v1/changes/webhooks/jira', headers: { 'content-type': 'application/json', ...A }, payload: '{"webhookEvent": ' });
    assert.equal(r.statusCode, 400);
  });

  test('a crash pushed into a series opens an incident with ranked candidates and its impact; POST /v1/impact answers the same shape', async () => {
    const pre = 24 * 7 * 3;
    const s = syntheticSeries({ seed: 7, start: Date.parse('2025-02-17T00:00:00Z'), points: pre + 30, noise: 0.02, effect: { atIndex: pre, shape: 'step', size: -0.4 } });
    const onset = s.ts[pre]!;
    await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { id: 'cause', title: 'migration: orders schema for android checkout', segments: ['android'], time: new Date(onset - 45 * 60_000).toISOString() } });
    await app.inject({ method: 'POST', url: '/v1/changes', headers: A, payload: { id: 'ios', title: 'hotfix: ios login', segments: ['ios'], time: new Date(onset - 20 * 60_000).toISOString() } });
    const points = s.ts.map((t, i) => ({ timestamp: new Date(t).toISOString(), value: s.values[i]!, labels: { platform: 'android' } }));
    let r = await app.inject({ method: 'POST', url: '/v1/series/revenue', headers: A, payload: { points } });
    assert.equal(r.statusCode, 202, r.body);
    assert.equal(r.json().incidentsOpened.length, 1);
    r = await app.inject({ method: 'GET', url: '/v1/incidents?status=open', headers: A });
    const [inc] = r.json().incidents;
    assert.equal(inc.onset, new Date(onset).toISOString());
    assert.equal(inc.direction, 'drop');
    assert.equal(inc.segment, 'platform=android');
    assert.equal(inc.candidates[0].change.id, 'cause');
    assert.ok(inc.impact.effect.cumulative.upper < 0);
    assert.equal((await app.inject({ method: 'GET', url: `/v1/incidents/${inc.id}`, headers: B })).statusCode, 404);
    r = await app.inject({ method: 'POST', url: '/v1/impact', headers: A, payload: { series: 'revenue', segment: 'platform=android', at: 'auto' } });
    assert.equal(r.statusCode, 200, r.body);
    const j = r.json();
    assert.deepEqual(Object.keys(j).slice(0, 4), ['onset', 'end', 'effect', 'candidates']);
    assert.equal(j.onset, new Date(onset).toISOString());
    assert.equal(j.candidates[0].change.id, 'cause');
    assert.equal(j.ongoing, true);
    r = await app.inject({ method: 'POST', url: '/v1/impact', headers: A, payload: { series: 'nope', at: 'auto' } });
    assert.equal(r.statusCode, 404);
    r = await app.inject({ method: 'POST', url: '/v1/impact', headers: A, payload: { series: { points: points.slice(0, 12).map(({ timestamp, value }) => ({ timestamp, value })) }, at: points[5]!.timestamp } });
    assert.equal(r.statusCode, 422, r.body);
  });

  test('SQL-defined series: the scheduler evaluates due definitions through runSql; errors are kept per definition', async () => {
    let r = await app.inject({ method: 'POST', url: '/v1/series', headers: A, payload: { name: 'purchases_hourly', sql: 'SELECT ts, value FROM x', interval: '1h' } });
    assert.equal(r.statusCode, 201, r.body);
    r = await app.inject({ method: 'POST', url: '/v1/series', headers: A, payload: { name: 'broken', sql: 'SELECT nope', interval: '5s' } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'interval');
    await store.putDefinition({ appId: 'appA', name: 'broken', sql: 'SELECT nope', intervalMs: 60_000 });
    let now = Date.parse('2025-03-01T00:00:00Z');
    const calls: Array<[string, string | undefined]> = [];
    const scheduler = new SeriesScheduler({
      store,
      now: () => now,
      runSql: async (sql, appId) => {
        calls.push([sql, appId]);
        if (sql === 'SELECT nope') throw new Error('Binder Error: column nope not found');
        return { columns: ['ts', 'value', 'segment'], rows: [[new Date('2025-02-28T22:00:00Z'), 10n, 'web'], ['2025-02-28T23:00:00Z', 12, 'web']] };
      },
    });
    await scheduler.tick();
    assert.deepEqual(calls, [['SELECT nope', 'appA'], ['SELECT ts, value FROM x', 'appA']]);
    await scheduler.tick();
    assert.equal(calls.length, 2, 'not due again within the interval');
    now += 3_600_000;
    await scheduler.tick();
    assert.equal(calls.length, 4);
    await scheduler.stop();
    r = await app.inject({ method: 'GET', url: '/v1/series/purchases_hourly?segment=web', headers: A });
    assert.deepEqual(r.json().points.map((p: { value: number }) => p.value), [10, 12]);
    const listed = (await app.inject({ method: 'GET', url: '/v1/series', headers: A })).json().series;
    const broken = listed.find((s: { name: string }) => s.name === 'broken');
    assert.equal(broken.definition.lastError, 'Binder Error: column nope not found');
    assert.equal(listed.find((s: { name: string }) => s.name === 'purchases_hourly').kind, 'sql');
    assert.equal(sqlCalls.length, 0);
  });
});
