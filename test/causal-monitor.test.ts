// Metric monitor: no alarms on ordinary seasonality, drops caught within 3 points, judged before learning, robust to
// outliers, snapshots resume exactly; the CLI writes the documented CSV.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CrashTracker, StreamingMonitor, detectOnset, monitorSeries } from '../src/causal/monitor.js';
import { syntheticSeries } from '../src/causal/synthetic.js';

const WEEK_H = 24 * 7;
const points = (s: { ts: number[]; values: number[] }) => s.ts.map((ts, i) => ({ ts, value: s.values[i]! }));

test('clean seasonal series: no alarm after warm-up; warm-up points are not judged', () => {
  let judged = 0;
  for (const seed of [11, 12, 13]) {
    const s = syntheticSeries({ seed, points: WEEK_H * 6, noise: 0.03, dailyAmplitude: 0.6, weeklyAmplitude: 0.25, trendPerDay: 0.002 });
    const js = monitorSeries(points(s));
    assert.equal(js.slice(0, WEEK_H * 2 - 1).some((j) => j.judged), false, 'the first two weeks are learned, not judged');
    judged += js.filter((j) => j.judged).length;
    assert.deepEqual(js.filter((j) => j.anomaly).map((j) => j.explanation), []);
  }
  assert.ok(judged > 3 * WEEK_H * 3.9);
});

test('a 20 % drop is flagged within 3 points, as a drop, with expected vs observed', () => {
  for (const seed of [21, 22, 23, 24]) {
    const at = WEEK_H * 3 + 7 + seed;
    const s = syntheticSeries({ seed, points: WEEK_H * 4, noise: 0.03, effect: { atIndex: at, shape: 'step', size: -0.2 } });
    const js = monitorSeries(points(s));
    const first = js.findIndex((j, i) => i >= at && j.anomaly);
    assert.ok(first >= at && first <= at + 2, `seed ${seed}: first flag ${first - at} points after the drop`);
    assert.equal(js[first]!.direction, 'drop');
    assert.ok(js[first]!.score >= 0.5 && js[first]!.score <= 1);
    assert.match(js[first]!.explanation, /^drop: observed [\d.]+, expected [\d.]+ \(normal range [\d.]+–[\d.]+\), -\d/);
    assert.ok(js.slice(0, at).every((j) => !j.anomaly), 'nothing before the drop');
  }
});

test('each point is judged only on what came before it (its own value never moves its expectation)', () => {
  const s = syntheticSeries({ seed: 31, points: WEEK_H * 3 });
  const a = new StreamingMonitor();
  const b = new StreamingMonitor();
  for (let i = 0; i < s.ts.length - 1; i++) {
    a.push(s.ts[i]!, s.values[i]!);
    b.push(s.ts[i]!, s.values[i]!);
  }
  const last = s.ts[s.ts.length - 1]!;
  const normal = a.push(last, s.values[s.values.length - 1]!);
  const crashed = b.push(last, s.values[s.values.length - 1]! * 0.5);
  assert.equal(crashed.expected, normal.expected);
  assert.equal(crashed.anomaly, true);
  assert.equal(normal.anomaly, false);
});

test('an outlier is flagged once and does not disturb what follows', () => {
  const s = syntheticSeries({ seed: 41, points: WEEK_H * 4, noise: 0.02 });
  const i0 = WEEK_H * 3;
  s.values[i0] = s.values[i0]! * 4;
  const js = monitorSeries(points(s));
  assert.equal(js[i0]!.anomaly, true);
  assert.equal(js[i0]!.direction, 'spike');
  assert.deepEqual(js.slice(i0 + 1).filter((j) => j.anomaly).map((j) => j.ts), []);
});

test('a snapshot resumes exactly where the monitor was', () => {
  const s = syntheticSeries({ seed: 51, points: WEEK_H * 3, effect: { atIndex: WEEK_H * 2 + 30, shape: 'step', size: -0.3 } });
  const whole = monitorSeries(points(s));
  const m = new StreamingMonitor();
  const half = Math.floor(s.ts.length / 2) + 3;
  for (let i = 0; i < half; i++) m.push(s.ts[i]!, s.values[i]!);
  const resumed = StreamingMonitor.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
  const rest = s.ts.slice(half).map((ts, k) => resumed.push(ts, s.values[half + k]!));
  assert.deepEqual(rest, whole.slice(half));
});

test('a confirmed crash opens one incident with its onset; detectOnset finds it', () => {
  const at = WEEK_H * 2 + 40;
  const s = syntheticSeries({ seed: 61, points: WEEK_H * 3, noise: 0.02, effect: { atIndex: at, shape: 'temporary', size: -0.35, durationPoints: 10 } });
  const m = new StreamingMonitor();
  const t = new CrashTracker();
  const events = s.ts.map((ts, i) => t.push(m.push(ts, s.values[i]!))).filter((e) => e !== null);
  assert.equal(events.length, 2);
  assert.equal(typeof events[0] === 'object' && events[0]!.onset, s.ts[at]);
  assert.equal(events[1], 'ended');
  assert.equal(detectOnset(points(s))?.onset, s.ts[at]);
});

test('causality monitor --series --out writes timestamp,value,score,anomaly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'causal-monitor-'));
  const at = WEEK_H * 2 + 5;
  const s = syntheticSeries({ seed: 71, points: WEEK_H * 2 + 24, noise: 0.02, effect: { atIndex: at, shape: 'step', size: -0.4 } });
  const csv = ['timestamp,value', ...s.ts.map((t, i) => `${new Date(t).toISOString()},${s.values[i]!.toFixed(3)}`)].join('\n');
  writeFileSync(join(dir, 'in.csv'), csv);
  const bin = fileURLToPath(new URL('../../bin/causality.js', import.meta.url));
  execFileSync(process.execPath, [bin, 'monitor', '--series', join(dir, 'in.csv'), '--out', join(dir, 'out.csv')], { stdio: 'pipe' });
  const rows = readFileSync(join(dir, 'out.csv'), 'utf8').trim().split('\n');
  assert.equal(rows[0], 'timestamp,value,score,anomaly');
  assert.equal(rows.length, s.ts.length + 1);
  const parsed = rows.slice(1).map((r) => r.split(','));
  assert.ok(parsed.every((r) => r.length === 4 && Number(r[2]) >= 0 && Number(r[2]) <= 1 && (r[3] === '0' || r[3] === '1')));
  assert.equal(parsed[at]![3], '1');
  assert.equal(parsed[at]![0], new Date(s.ts[at]!).toISOString());
  assert.ok(parsed.slice(0, at).every((r) => r[3] === '0'));
});
