// State that survives a restart: a snapshot restored mid-stream gives exactly the anomalies an uninterrupted engine
// gives, and replaying events it already covered raises nothing again. (The anomaly store itself: its contract suite,
// store-anomaly-contract.test.ts, on SQLite and PostgreSQL.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DetectionEngine } from '../src/detect/engine.js';
import { normalizeFileEvent } from '../src/detect/event-file.js';
import { loadRulesDirStrict } from '../src/detect/rules-loader.js';
import type { StoredEvent } from '../src/event/stored-event.js';
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
