// The labelled generator: deterministic from its seed, labels consistent with the events, every event accepted by
// the envelope, and the noise that makes detection honest (travel, new phones, mistyped passwords, a release).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SCENARIOS, generateAll, simulate, type GenerateOptions } from '../src/generate/simulate.js';
import { normalizeFileEvent } from '../src/detect/event-file.js';
import { createLiveTraffic } from '../src/generate/live.js';

const HOUR = 3_600_000;
const start = Date.UTC(2026, 10, 2, 8);
const opts: GenerateOptions = { seed: 11, users: 400, start, durationMs: 8 * HOUR, anomalyRate: 0.25, attacksFrom: start + 2 * HOUR, releaseAt: start + 3 * HOUR };
const digest = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex');
const BIN = new URL('../../bin/causality.js', import.meta.url).pathname;

test('same seed and options → identical events and labels; another seed → different ones', () => {
  const a = generateAll(opts);
  const b = generateAll(opts);
  assert.equal(digest(a), digest(b));
  const c = generateAll({ ...opts, seed: 12 });
  assert.notEqual(digest(a.events.slice(0, 100)), digest(c.events.slice(0, 100)));
});

test('labels are consistent with the events; events are valid, ordered and noisy', () => {
  const { events, labels } = generateAll(opts);
  const byId = new Map(events.map((e) => [e.eventId, e]));
  assert.equal(byId.size, events.length, 'event ids are unique');
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.timestamp >= events[i - 1]!.timestamp, 'time order');
  assert.deepEqual(new Set(labels.map((l) => l.scenario)), new Set(SCENARIOS), 'every scenario occurs');
  for (const l of labels) {
    assert.ok(l.eventIds.length > 0);
    assert.ok(l.startTs >= opts.attacksFrom! && l.endTs >= l.startTs);
    for (const id of l.eventIds) {
      const e = byId.get(id);
      assert.ok(e, `label ${l.labelId} cites unknown event ${id}`);
      assert.ok(e.timestamp >= l.startTs && e.timestamp <= l.endTs);
    }
    const own = l.eventIds.map((id) => byId.get(id)!);
    if (l.entityType === 'device') assert.ok(own.some((e) => e.deviceId === l.entityId));
    if (l.entityType === 'session') assert.ok(own.every((e) => e.sessionId === l.entityId));
    if (l.entityType === 'user') assert.ok(own.some((e) => e.userId === l.entityId));
  }
  // No attack before attacksFrom: the training prefix is clean.
  const attack = new Set(labels.flatMap((l) => l.eventIds));
  assert.ok(events.filter((e) => e.timestamp < opts.attacksFrom!).every((e) => !attack.has(e.eventId)));
  // Every event passes the envelope (what ingest and backtest accept); the IP leaves as a hash, never raw.
  for (const e of events) {
    const r = normalizeFileEvent(JSON.parse(JSON.stringify(e)));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
    assert.ok(r.event.ip_hash && !r.event.props.includes('"context.ip"'));
  }
  // Noise: failed logins outside attacks, a second app version after the release, more than one country per user.
  const normal = events.filter((e) => !attack.has(e.eventId));
  assert.ok(normal.some((e) => e.type === 'userLogin' && e.success === false), 'mistyped passwords');
  assert.ok(normal.some((e) => (e.context as { appVersion: string }).appVersion === '2.4.0'), 'the release is adopted');
  assert.ok(!events.some((e) => e.timestamp < opts.releaseAt! && ['2.4.0', '5.2.0'].includes((e.context as { appVersion: string }).appVersion)));
  const lifecycle = normal.filter((e) => e.type === 'appStart' || e.type === 'appForeground').length;
  assert.ok(lifecycle > 100);
  // Attack traffic is not trivially marked: same id formats and user-agent shapes as everyone else.
  const attackEvents = events.filter((e) => attack.has(e.eventId));
  const shape = (s: string) => s.replace(/[0-9a-z]/g, 'x');
  assert.deepEqual(new Set(attackEvents.map((e) => shape(e.deviceId))), new Set(normal.map((e) => shape(e.deviceId))));
});

test('endless live traffic: keeps going, maps app ids, never sends the simulated IP', () => {
  const next = createLiveTraffic({ appIds: ['demo'], devices: 50, seed: 3, rate: 200, start });
  let last = 0;
  for (let i = 0; i < 5000; i++) {
    const e = next();
    assert.equal(e.appId, 'demo');
    assert.ok(!('ip' in (e.context as object)));
    assert.ok(e.timestamp >= last);
    last = e.timestamp;
  }
  const it = simulate({ ...opts, durationMs: 0 }, () => {});
  for (let i = 0; i < 1000; i++) assert.equal(it.next().done, false);
});

test('causality generate | backtest: files in the HTTP envelope, anomalies as JSON lines with their entity fields', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gen-'));
  try {
    const run = (...args: string[]) => execFileSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    run('generate', '--users', '200', '--duration', '6h', '--clean', '3h', '--train-out', 'train.jsonl', '--out', 'events.jsonl', '--labels', 'labels.jsonl', '--seed', '5', '--anomaly-rate', '0.3');
    const first = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    run('generate', '--users', '200', '--duration', '6h', '--clean', '3h', '--train-out', 'train2.jsonl', '--out', 'events2.jsonl', '--seed', '5', '--anomaly-rate', '0.3');
    assert.equal(readFileSync(join(dir, 'events2.jsonl'), 'utf8'), first, 'the CLI is deterministic too');
    const labels = readFileSync(join(dir, 'labels.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(labels.length >= 5);
    run('backtest', '--events', 'events.jsonl', '--train', 'train.jsonl', '--out', 'anomalies.jsonl');
    const anomalies = readFileSync(join(dir, 'anomalies.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(anomalies.length > 0);
    for (const a of anomalies) {
      for (const k of ['id', 'entityType', 'entityId', 'appId', 'deviceId', 'userId', 'sessionId', 'ts', 'score', 'severity', 'source', 'explanation', 'eventIds']) assert.ok(k in a, `${k} in ${JSON.stringify(a)}`);
      assert.ok(a.score >= 0 && a.score <= 1);
    }
    // Attacks were found: most labels have an anomaly on one of their events.
    const flagged = new Set(anomalies.flatMap((a) => a.eventIds));
    const found = labels.filter((l) => l.eventIds.some((id: string) => flagged.has(id))).length;
    assert.ok(found / labels.length >= 0.8, `${found}/${labels.length}`);
    // The same run again gives the same anomaly ids (replays dedupe downstream).
    run('backtest', '--events', 'events.jsonl', '--train', 'train.jsonl', '--out', 'again.jsonl', '--no-rules');
    const again = readFileSync(join(dir, 'again.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const ids = new Set(anomalies.map((a) => a.id));
    assert.ok(again.every((a) => ids.has(a.id)), 'models-only anomalies are a subset with the same ids');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
