// State that survives a restart: a snapshot restored mid-stream gives exactly the anomalies an uninterrupted engine
// gives, and replaying events it already covered raises nothing again. And the anomaly store: idempotent inserts,
// filters, cursor paging, status, on a temporary SQLite file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DetectionEngine } from '../src/detect/engine.js';
import { normalizeFileEvent } from '../src/detect/event-file.js';
import { loadRulesDirStrict } from '../src/detect/rules-loader.js';
import { SqliteAnomalyStore, SqliteSnapshotStore } from '../src/detect/anomaly-store.js';
import type { Anomaly } from '../src/detect/anomaly.js';
import type { StoredEvent } from '../src/event/stored-event.js';
import { openSqlite } from '../src/state/sqlite.js';
import { generateAll } from '../src/generate/simulate.js';

const HOUR = 3_600_000;
const start = Date.UTC(2026, 10, 2, 8);
const rules = loadRulesDirStrict(new URL('../../rules', import.meta.url).pathname);

function traffic(): StoredEvent[] {
  const { events } = generateAll({ seed: 31, users: 300, start, durationMs: 10 * HOUR, anomalyRate: 0.3, attacksFrom: start + 4 * HOUR });
  return events.map((e) => {
    const r = normalizeFileEvent(e);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    return r.event;
  });
}

test('snapshot/restore: same anomalies as an uninterrupted run, nothing re-raised on replay', () => {
  const events = traffic();
  const cut = Math.floor(events.length * 0.6);
  const whole = new DetectionEngine({ rules });
  const all = events.map((e) => whole.process(e));
  const before = all.slice(0, cut).flat();
  const after = all.slice(cut).flat();
  assert.ok(before.length > 5 && after.length > 5, `anomalies on both sides (${before.length}, ${after.length})`);

  const first = new DetectionEngine({ rules });
  for (let i = 0; i < cut; i++) first.process(events[i]!);
  const snap = first.snapshot();
  const restored = DetectionEngine.fromSnapshot(snap, { rules });
  assert.deepEqual(restored.stats(), first.stats());
  // A consumer that crashed after the snapshot re-reads events the snapshot already covers: none raises again.
  const replayed = events.slice(cut - 2000, cut).flatMap((e) => restored.process(e));
  const beforeIds = new Set(before.map((a) => a.id));
  assert.deepEqual(replayed.filter((a) => beforeIds.has(a.id)), [], 'no re-raise of an anomaly raised before the snapshot');

  const again = DetectionEngine.fromSnapshot(snap, { rules });
  const resumed = events.slice(cut).flatMap((e) => again.process(e));
  assert.deepEqual(resumed, after);
});

const anomaly = (o: Partial<Anomaly>): Anomaly => ({
  id: 'a-1',
  appId: 'shop',
  entityType: 'device',
  entityId: 'dev-1',
  deviceId: 'dev-1',
  userId: 'u-1',
  sessionId: 's-1',
  ipHash: 'ip-1',
  ts: start,
  score: 0.8,
  severity: 'high',
  source: 'model:markov',
  category: 'modified_client',
  explanation: 'transition Home→Payment seen',
  eventIds: ['e-1'],
  details: { p: 1e-6 },
  ...o,
});
const count = (r: unknown) => (Array.isArray(r) ? r.length : (r as number));

test('anomaly store: idempotent insert, filters, cursor paging, get, status', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'anomalies-'));
  const db = openSqlite(join(dir, 'state.db'));
  try {
    const store = new SqliteAnomalyStore(db, () => 1000);
    const batch = Array.from({ length: 25 }, (_, i) =>
      anomaly({
        id: `a-${String(i).padStart(2, '0')}`,
        appId: i % 5 === 0 ? 'food' : 'shop',
        entityType: i % 2 ? 'user' : 'device',
        entityId: i % 2 ? `u-${i % 3}` : `dev-${i % 4}`,
        severity: (['low', 'medium', 'high', 'critical'] as const)[i % 4],
        source: i % 3 ? 'rule:brute-force-ip' : 'model:markov',
        ts: start + Math.floor(i / 2) * 1000,
      }),
    );
    assert.equal(count(await store.insert(batch)), 25);
    assert.equal(count(await store.insert(batch.slice(0, 10))), 0, 'same ids: nothing new');
    assert.equal(count(await store.insert([anomaly({ id: 'a-00', explanation: 'changed' })])), 0);
    assert.equal((await store.get('a-00'))!.explanation, batch[0]!.explanation, 'the first insert wins');

    const got = await store.get('a-03');
    assert.deepEqual(got, { ...batch[3]!, status: 'open', createdAt: 1000, updatedAt: 1000 });
    assert.equal(await store.get('nope'), null);

    const ids = async (f: Parameters<typeof store.list>[0]) => (await store.list(f, { limit: 1000 })).items.map((a) => a.id).sort();
    assert.deepEqual(await ids({ appId: 'food' }), ['a-00', 'a-05', 'a-10', 'a-15', 'a-20']);
    assert.deepEqual(await ids({ entityType: 'user', entityId: 'u-1' }), batch.filter((a) => a.entityId === 'u-1').map((a) => a.id).sort());
    assert.deepEqual(await ids({ severity: 'critical' }), ['a-03', 'a-07', 'a-11', 'a-15', 'a-19', 'a-23']);
    assert.equal((await ids({ minSeverity: 'high' })).length, 12);
    assert.deepEqual(await ids({ source: 'model:markov', appId: 'shop' }), ['a-03', 'a-06', 'a-09', 'a-12', 'a-18', 'a-21', 'a-24']);
    assert.deepEqual(await ids({ from: start + 11_000 }), ['a-22', 'a-23', 'a-24']);
    assert.deepEqual(await ids({ to: start + 1000 }), ['a-00', 'a-01']);
    assert.deepEqual(await ids({ appIds: [] }), []);

    // Paging: newest first, ties broken by id, every row exactly once.
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await store.list({}, { limit: 7, cursor });
      seen.push(...page.items.map((a) => a.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 4);
    assert.deepEqual(seen, [...batch].sort((a, b) => b.ts - a.ts || (b.id < a.id ? -1 : 1)).map((a) => a.id));
    await assert.rejects(store.list({}, { cursor: 'garbage' }), /cursor/);

    assert.equal(await store.setStatus('a-01', 'acknowledged'), true);
    assert.equal(await store.setStatus('missing', 'resolved'), false);
    assert.deepEqual(await ids({ status: 'acknowledged' }), ['a-01']);
    assert.equal((await ids({ status: 'open' })).length, 24);

    const snaps = new SqliteSnapshotStore(db, () => 2000);
    assert.equal(await snaps.load('detector'), null);
    await snaps.save('detector', Buffer.from('state-1'), '42', 10);
    await snaps.save('detector', Buffer.from('state-2'), '84', 20);
    const s = await snaps.load('detector');
    assert.deepEqual({ ...s!, data: s!.data.toString() }, { data: 'state-2', position: '84', events: 20, savedAt: 2000 });
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
