// Each detector of the engine on small hand-made sequences: what it raises, what it must not, and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DetectionEngine } from '../src/detect/engine.js';
import type { Anomaly } from '../src/detect/anomaly.js';
import { T0, ev, humanSession } from './detect-helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;

function run(engine: DetectionEngine, events: ReturnType<typeof ev>[]): Anomaly[] {
  return events.flatMap((e) => engine.process(e));
}

test('the first events of a new user, device and IP are never "new": novelty stays 0 until there is history', () => {
  const engine = new DetectionEngine();
  const seen: number[] = [];
  const scores = (engine as unknown as { scores: { novelty: number } }).scores;
  for (const e of humanSession({ start: T0, session: 's-a', user: 'u-new', device: 'd-new', ip: 'ip-new', country: 'BR' })) {
    assert.deepEqual(engine.process(e), []);
    seen.push(scores.novelty);
  }
  assert.deepEqual(seen, seen.map(() => 0));
});

test('novelty: a known user on a new device from a new country scores high; the same user at home scores 0', () => {
  const engine = new DetectionEngine();
  const scores = (engine as unknown as { scores: { novelty: number; geoVelocity: number } }).scores;
  for (let d = 0; d < 6; d++) for (const e of humanSession({ start: T0 + d * 6 * HOUR, session: `s-${d}` })) engine.process(e);
  engine.process(ev({ session_id: 's-home', ts: T0 + 40 * HOUR }));
  assert.equal(scores.novelty, 0);
  engine.process(ev({ session_id: 's-x', device_id: 'd-attacker', device_model: 'SM-S918B', os: 'Android', ip_hash: 'ip-proxy', country: 'BR', ts: T0 + 40 * HOUR + MIN }));
  assert.ok(scores.novelty >= 0.99, `novelty ${scores.novelty}`);
  assert.equal(scores.geoVelocity, 1, 'FR one minute ago, BR now');
});

/** Teaches the engine a navigation habit: many sessions of Home → Search → ProductList → ProductDetail. */
function trained(devices = 120): DetectionEngine {
  // A small world has a small vocabulary (6 symbols): the uniform floor is higher than in a real app, so the threshold is too.
  const engine = new DetectionEngine({ config: { markovThreshold: 1e-3 } });
  for (let d = 0; d < devices; d++) {
    for (let k = 0; k < 3; k++) {
      const start = T0 + (d * 3 + k) * 10 * MIN;
      for (const e of humanSession({ start, session: `s-${d}-${k}`, device: `d-${d}`, user: `u-${d}` })) engine.learn(e);
    }
  }
  return engine;
}

test('markov: a transition the app never makes raises, with p under the version model and app-wide in the explanation', () => {
  const engine = trained();
  const t = T0 + 40 * HOUR;
  const events = [
    ev({ type: 'appStart', session_id: 'm-1', device_id: 'd-mod', ts: t }),
    ev({ type: 'screenView', screen_name: 'Home', session_id: 'm-1', device_id: 'd-mod', ts: t + 2000 }),
    ev({ type: 'screenView', screen_name: 'ProductDetail', session_id: 'm-1', device_id: 'd-mod', ts: t + 6000 }),
  ];
  const found = run(engine, events);
  assert.equal(found.length, 1);
  const a = found[0]!;
  assert.equal(a.source, 'model:markov');
  assert.equal(a.entityType, 'device');
  assert.equal(a.entityId, 'd-mod');
  assert.deepEqual(a.eventIds, [events[2]!.event_id]);
  assert.match(a.explanation, /transition screenView:Home→screenView:ProductDetail seen, p=.* under shop v2\.3\.0's model/);
  assert.match(a.explanation, /app-wide p=/);
  assert.ok(a.score > 0.5 && a.score <= 1);
});

test('markov: usual transitions raise nothing, and a screen the app has barely seen (a new release) is not judged', () => {
  const engine = trained();
  const t = T0 + 40 * HOUR;
  assert.deepEqual(run(engine, humanSession({ start: t, session: 'ok-1', device: 'd-ok' })), []);
  const fresh = [
    ev({ type: 'screenView', screen_name: 'Home', session_id: 'new-1', device_id: 'd-new', app_version: '2.4.0', ts: t + HOUR }),
    ev({ type: 'screenView', screen_name: 'Wishlist', session_id: 'new-1', device_id: 'd-new', app_version: '2.4.0', ts: t + HOUR + 5000 }),
  ];
  assert.deepEqual(run(engine, fresh), []);
});

test('timing: a metronome session without lifecycle events is a scripted client; a human session is not', () => {
  const engine = new DetectionEngine();
  const bot = Array.from({ length: 25 }, (_, i) => ev({ session_id: 'bot-1', device_id: 'd-bot', screen_name: i % 2 ? 'Home' : 'Search', ts: T0 + i * 2000 + (i % 3) * 40 }));
  const found = run(engine, bot);
  assert.equal(found.filter((a) => a.source === 'model:timing').length, 1, 'raised once per session');
  const a = found.find((x) => x.source === 'model:timing')!;
  assert.equal(a.entityType, 'device');
  assert.match(a.explanation, /coefficient of variation 0\.0\d/);
  assert.match(a.explanation, /0 lifecycle events/);
  const human: ReturnType<typeof ev>[] = [];
  for (let k = 0; k < 4; k++) human.push(...humanSession({ start: T0 + k * 60_000, session: 'h-1', device: 'd-h' }));
  assert.deepEqual(run(engine, human).filter((x) => x.source === 'model:timing'), []);
});

test('session length: a session longer than the limit raises once, about the session', () => {
  const engine = new DetectionEngine({ config: { longSessionMinMs: 60 * MIN } });
  const events = Array.from({ length: 100 }, (_, i) => ev({ session_id: 'long-1', type: i === 0 ? 'appStart' : 'screenView', screen_name: 'Home', ts: T0 + i * 2 * MIN + (i % 7) * 3000 }));
  const found = run(engine, events).filter((a) => a.source === 'model:session-length');
  assert.equal(found.length, 1);
  assert.equal(found[0]!.entityType, 'session');
  assert.equal(found[0]!.entityId, 'long-1');
  assert.ok(found[0]!.ts > T0 + 60 * MIN && found[0]!.ts <= T0 + 64 * MIN);
  assert.match(found[0]!.explanation, /session lasted 1\.0 h/);
});

test('build: an unknown build of a mature version raises; builds of a version nobody runs yet do not', () => {
  const engine = new DetectionEngine();
  for (let d = 0; d < 40; d++) engine.process(ev({ device_id: `d-${d}`, session_id: `s-${d}`, ts: T0 + d * 1000 }));
  const mod = run(engine, [ev({ device_id: 'd-mod', session_id: 's-mod', app_build: '2299', ts: T0 + HOUR })]);
  assert.equal(mod.length, 1);
  assert.equal(mod[0]!.source, 'model:build');
  assert.match(mod[0]!.explanation, /build 2299 of shop v2\.3\.0 on ios seen on 0 device\(s\) before; the version's 40 devices run 2300 \(40 devices\)/);
  assert.deepEqual(run(engine, [ev({ device_id: 'd-early', session_id: 's-early', app_version: '2.4.0', app_build: '2410', ts: T0 + HOUR })]), []);
});

test('hour of day: an hour the user was never active in is learned, not an error (seed 001 dropped it)', () => {
  const engine = new DetectionEngine();
  const scores = (engine as unknown as { scores: { hourRarity: number } }).scores;
  for (let d = 0; d < 10; d++) for (let i = 0; i < 12; i++) engine.process(ev({ session_id: `s-${d}`, ts: T0 + d * 86_400_000 + i * MIN }));
  const at3 = T0 + 20 * 86_400_000 - 6 * HOUR; // 03:00 UTC, never seen
  engine.process(ev({ session_id: 's-night', ts: at3 }));
  assert.ok(scores.hourRarity > 0.6, `rarity ${scores.hourRarity}`);
  for (let i = 0; i < 40; i++) engine.process(ev({ session_id: 's-night', ts: at3 + i * 1000 }));
  assert.equal(scores.hourRarity, 0, 'learned: 03:00 is now one of its hours');
});

test('rate: a burst of one event type far above the app EMA raises model:rate', () => {
  const engine = new DetectionEngine({ config: { rateMinCount: 20 } });
  for (let d = 0; d < 1200; d++) {
    const t = T0 + d * 61_000;
    engine.process(ev({ device_id: `d-${d % 50}`, session_id: `s-${d}`, type: 'buttonTap', button_id: 'share', ts: t }));
    engine.process(ev({ device_id: `d-${d % 50}`, session_id: `s-${d}`, type: 'buttonTap', button_id: 'share', ts: t + 4000 }));
  }
  const t = T0 + 1300 * 61_000;
  const burst = Array.from({ length: 30 }, (_, i) => ev({ device_id: 'd-tap', session_id: 's-tap', type: 'buttonTap', button_id: 'share', ts: t + i * 50 }));
  const found = run(engine, burst).filter((a) => a.source === 'model:rate');
  assert.equal(found.length, 1);
  assert.match(found[0]!.explanation, /20 buttonTap events in one minute from device d-tap/);
});
