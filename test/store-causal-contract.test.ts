// The causal store's contract, run against SQLite and PostgreSQL alike (its HTTP users: causal-http.test.ts, on
// both too): points upserted by (app, series, segment, time), scopes (an app, admin-wide, every app), definitions,
// changes idempotent and ordered, incidents, monitor state.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Change } from '../src/causal/changes.js';
import { CausalService } from '../src/causal/service.js';
import { syntheticSeries } from '../src/causal/synthetic.js';
import type { Incident } from '../src/causal/store.js';
import { backends } from './store-backends.js';

const change = (o: Partial<Change> & { id: string; time: string }): Change => ({
  appId: 'appA', source: 'api', kind: 'deploy', service: null, component: null, version: null, commit: null, author: null,
  title: `change ${o.id}`, description: null, url: null, paths: [], segments: [], size: null, risk: null, ...o,
});

const incident = (o: Partial<Incident> & { id: string }): Incident => ({
  appId: 'appA', series: 'revenue', segment: '', direction: 'drop', onset: '2025-03-01T10:00:00.000Z', detectedAt: '2025-03-01T11:00:00.000Z',
  status: 'open', resolvedAt: null, score: 7.5, explanation: 'revenue fell', candidates: [], impact: null, ...o,
});

for (const backend of backends()) {
  describe(`causal store on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('points: upsert by time (the last value wins), read by segment and range, series listed per scope', async () => {
      const { causal: s } = await (await backend.fresh()).open();
      assert.equal(await s.upsertPoints('appA', 'revenue', [{ ts: 1000, value: 1, segment: '' }, { ts: 2000, value: 2, segment: '' }, { ts: 2000, value: 5, segment: 'platform=ios' }]), 3);
      assert.equal(await s.upsertPoints('appA', 'revenue', [{ ts: 2000, value: 20, segment: '' }, { ts: 2000, value: 21, segment: '' }, { ts: 3000.4, value: 3, segment: '' }]), 3);
      await s.upsertPoints(null, 'revenue', [{ ts: 1000, value: 100, segment: '' }]);
      await s.upsertPoints('appB', 'signups', [{ ts: 1000, value: 1, segment: 'b=2,a=1' }]);
      assert.deepEqual(await s.readPoints('appA', 'revenue'), [
        { ts: 1000, value: 1, segment: '' },
        { ts: 2000, value: 21, segment: '' },
        { ts: 3000, value: 3, segment: '' },
      ]);
      assert.deepEqual((await s.readPoints('appA', 'revenue', { from: 1500, to: 3000 })).map((p) => p.ts), [2000]);
      assert.deepEqual((await s.readPoints('appA', 'revenue', { from: 1999.5 })).map((p) => p.ts), [2000, 3000]);
      assert.deepEqual(await s.readPoints('appA', 'revenue', { segment: 'platform=ios' }), [{ ts: 2000, value: 5, segment: 'platform=ios' }]);
      assert.deepEqual(await s.readPoints(null, 'revenue'), [{ ts: 1000, value: 100, segment: '' }]);
      assert.deepEqual(await s.readPoints('appB', 'revenue'), []);

      const a = await s.listSeries('appA');
      assert.deepEqual(a, [{ appId: 'appA', name: 'revenue', kind: 'pushed', points: 4, segments: ['platform=ios'], first: new Date(1000).toISOString(), last: new Date(3000).toISOString(), definition: null }]);
      assert.deepEqual((await s.listSeries(undefined)).map((x) => `${x.appId}:${x.name}`), ['null:revenue', 'appA:revenue', 'appB:signups']);
      assert.deepEqual((await s.listSeries(null)).map((x) => x.points), [1]);
    });

    test('definitions: put (replace), listed by app then name, each run recorded with its error', async () => {
      const { causal: s } = await (await backend.fresh()).open();
      await s.putDefinition({ appId: 'appB', name: 'b', sql: 'SELECT 1', intervalMs: 60_000 });
      await s.putDefinition({ appId: 'appA', name: 'z', sql: 'SELECT 2', intervalMs: 60_000 });
      await s.putDefinition({ appId: 'appA', name: 'Y', sql: 'SELECT 3', intervalMs: 60_000 });
      await s.putDefinition({ appId: null, name: 'all', sql: 'SELECT 4', intervalMs: 60_000 });
      await s.putDefinition({ appId: 'appA', name: 'z', sql: 'SELECT 22', intervalMs: 120_000 });
      assert.deepEqual((await s.listDefinitions()).map((d) => `${d.appId}:${d.name}:${d.sql}:${d.intervalMs}`), [
        'null:all:SELECT 4:60000',
        'appA:Y:SELECT 3:60000',
        'appA:z:SELECT 22:120000',
        'appB:b:SELECT 1:60000',
      ]);
      await s.markDefinitionRun('appA', 'z', 5000, 'Binder Error');
      await s.markDefinitionRun('appA', 'Y', 6000, null);
      const defs = await s.listDefinitions();
      assert.deepEqual(defs.find((d) => d.name === 'z'), { appId: 'appA', name: 'z', sql: 'SELECT 22', intervalMs: 120_000, lastRunAt: 5000, lastError: 'Binder Error' });
      assert.deepEqual((await s.listSeries('appA')).map((x) => [x.name, x.kind, x.definition?.lastError ?? null]), [['Y', 'sql', null], ['z', 'sql', 'Binder Error']]);
    });

    test('changes: idempotent per app (the first write wins), listed by time then id within a scope, risk set later', async () => {
      const { causal: s } = await (await backend.fresh()).open();
      const first = change({ id: 'deploy-1', time: '2025-03-10T09:00:00.000Z', title: 'first' });
      assert.deepEqual(await s.insertChange(first), { change: first, created: true });
      assert.deepEqual(await s.insertChange({ ...first, title: 'second' }), { change: first, created: false });
      // The same id in another app, or admin-wide, is another change.
      assert.equal((await s.insertChange({ ...first, appId: 'appB' })).created, true);
      assert.equal((await s.insertChange({ ...first, appId: null })).created, true);
      for (const id of ['b', 'B', 'a']) await s.insertChange(change({ id, time: '2025-03-10T08:00:00.000Z' }));
      await s.insertChange(change({ id: 'late', time: '2025-03-11T00:00:00.000Z' }));
      assert.deepEqual((await s.listChanges({ appId: 'appA' })).map((c) => c.id), ['B', 'a', 'b', 'deploy-1', 'late']);
      assert.deepEqual((await s.listChanges({ appId: 'appA', from: Date.parse('2025-03-10T08:30:00Z'), to: Date.parse('2025-03-11T00:00:00Z') })).map((c) => c.id), ['deploy-1']);
      assert.deepEqual((await s.listChanges({ appId: 'appA', limit: 2 })).map((c) => c.id), ['B', 'a']);
      assert.deepEqual((await s.listChanges({ appId: null })).map((c) => `${c.appId}:${c.id}`), ['null:deploy-1']);
      assert.equal((await s.listChanges({ appId: undefined })).length, 7);
      assert.equal(await s.getChange('appC', 'deploy-1'), null);

      const risk = { level: 'HIGH' as const, component: 'search', reasons: ['model said so'], classifier: 'llm' as const };
      await s.setChangeRisk('appA', 'deploy-1', risk);
      await s.setChangeRisk('appA', 'missing', risk);
      assert.deepEqual((await s.getChange('appA', 'deploy-1'))!.risk, risk);
      assert.equal((await s.getChange('appB', 'deploy-1'))!.risk, null);
    });

    test('incidents: insert, patch, newest onset first per scope and status, the open one of a segment', async () => {
      const { causal: s } = await (await backend.fresh()).open();
      await s.insertIncident(incident({ id: 'i-1', onset: '2025-03-01T10:00:00.000Z' }));
      await s.insertIncident(incident({ id: 'i-2', onset: '2025-03-02T10:00:00.000Z', segment: 'platform=android' }));
      await s.insertIncident(incident({ id: 'i-3', onset: '2025-03-03T10:00:00.000Z', appId: 'appB' }));
      await s.insertIncident(incident({ id: 'i-0', onset: '2025-02-01T10:00:00.000Z' }));
      assert.deepEqual((await s.listIncidents({ appId: 'appA' })).map((i) => i.id), ['i-2', 'i-1', 'i-0']);
      assert.deepEqual((await s.listIncidents({ appId: undefined, limit: 2 })).map((i) => i.id), ['i-3', 'i-2']);
      assert.equal((await s.findOpenIncident('appA', 'revenue', ''))!.id, 'i-1', 'the newest open one of that segment');
      await s.updateIncident('i-1', { status: 'resolved', resolvedAt: '2025-03-01T12:00:00.000Z' });
      await s.updateIncident('i-missing', { status: 'resolved' });
      assert.equal((await s.findOpenIncident('appA', 'revenue', ''))!.id, 'i-0');
      assert.deepEqual((await s.listIncidents({ appId: 'appA', status: 'resolved' })).map((i) => i.id), ['i-1']);
      const candidates = [{ change: change({ id: 'c', time: '2025-03-01T09:00:00.000Z' }), score: 0.9, reasons: ['just before'] }] as unknown as Incident['candidates'];
      await s.updateIncident('i-1', { candidates });
      assert.deepEqual(await s.getIncident('i-1'), incident({ id: 'i-1', onset: '2025-03-01T10:00:00.000Z', status: 'resolved', resolvedAt: '2025-03-01T12:00:00.000Z', candidates }));
      assert.equal(await s.getIncident('nope'), null);
    });

    test('monitor state: saved per (app, series, segment), replaced, absent until saved', async () => {
      const { causal: s } = await (await backend.fresh()).open();
      const snap = { monitor: { n: 3, mean: 1.5 }, tracker: { open: false } } as never;
      assert.equal(await s.loadMonitor('appA', 'revenue', ''), null);
      await s.saveMonitor('appA', 'revenue', '', snap);
      await s.saveMonitor('appA', 'revenue', 'x=1', { monitor: { n: 9 }, tracker: {} } as never);
      assert.deepEqual(await s.loadMonitor('appA', 'revenue', ''), snap);
      await s.saveMonitor('appA', 'revenue', '', { monitor: { n: 4 }, tracker: {} } as never);
      assert.deepEqual(await s.loadMonitor('appA', 'revenue', ''), { monitor: { n: 4 }, tracker: {} });
      assert.equal(await s.loadMonitor(null, 'revenue', ''), null);
    });
  });
}

for (const backend of backends()) {
  describe(`causal service on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('points pushed at once into one segment open one incident, not one per push (the monitor state is updated in turn)', async () => {
      const { causal: store } = await (await backend.fresh()).open();
      const service = new CausalService({ store });
      const pre = 24 * 7 * 3;
      const s = syntheticSeries({ seed: 7, start: Date.parse('2025-02-17T00:00:00Z'), points: pre + 30, noise: 0.02, effect: { atIndex: pre, shape: 'step', size: -0.4 } });
      const points = s.ts.map((ts, i) => ({ ts, value: s.values[i]!, segment: 'platform=android' }));
      const halves = [points.slice(0, pre + 10), points.slice(pre + 10)];
      const results = await Promise.all([...halves, ...halves].map((h) => service.ingestPoints('appA', 'revenue', h)));
      assert.equal(results.reduce((n, r) => n + r.opened.length, 0), 1);
      const incidents = await store.listIncidents({ appId: 'appA' });
      assert.equal(incidents.length, 1);
      assert.equal(incidents[0]!.onset, new Date(s.ts[pre]!).toISOString());
    });
  });
}
