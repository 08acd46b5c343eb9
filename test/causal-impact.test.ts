// Counterfactual impact: known effects recovered with honest intervals, signs kept, the end found (never "the rest
// of the series"), controls used; the CLI prints exactly the documented JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { estimateImpact } from '../src/causal/impact.js';
import { syntheticSeries } from '../src/causal/synthetic.js';

const W = 24 * 7;
const truthOf = (s: { values: number[]; counterfactual: number[] }, from: number, to: number) => {
  let t = 0;
  for (let i = from; i <= to; i++) t += s.values[i]! - s.counterfactual[i]!;
  return t;
};

test('a temporary 30 % drop: estimate within 10 %, interval covers the truth, the end is found', () => {
  const pre = W * 5;
  const s = syntheticSeries({ seed: 101, points: pre + W, noise: 0.03, effect: { atIndex: pre, shape: 'temporary', size: -0.3, durationPoints: 36 } });
  const r = estimateImpact({ ts: s.ts, values: s.values, onset: s.ts[pre]! });
  const truth = truthOf(s, pre, pre + 35);
  const c = r.effect.cumulative;
  assert.ok(Math.abs(c.estimate - truth) / Math.abs(truth) < 0.1, `${c.estimate} vs ${truth}`);
  assert.ok(c.lower <= truth && truth <= c.upper, `[${c.lower}, ${c.upper}] misses ${truth}`);
  assert.equal(r.ongoing, false);
  assert.ok(Math.abs(r.points - 36) <= 3, `effect lasted ${r.points} points, truly 36`);
  assert.equal(r.effect.pointwise.length, r.points);
  assert.ok(r.effect.relative.estimate < -0.25 && r.effect.relative.estimate > -0.35);
  assert.equal(r.onset, new Date(s.ts[pre]!).toISOString());
});

test('a gain is a gain (no abs()), and an effect that has not ended is reported as ongoing', () => {
  const pre = W * 4;
  const s = syntheticSeries({ seed: 102, points: pre + 48, noise: 0.02, effect: { atIndex: pre, shape: 'step', size: 0.2 } });
  const r = estimateImpact({ ts: s.ts, values: s.values, onset: s.ts[pre]! });
  assert.ok(r.effect.cumulative.lower > 0, 'the whole interval is a gain');
  assert.equal(r.ongoing, true);
  assert.equal(r.end, new Date(s.ts[s.ts.length - 1]!).toISOString());
});

test('no effect: the interval contains zero', () => {
  const pre = W * 4;
  const s = syntheticSeries({ seed: 103, points: pre + 48, noise: 0.03 });
  const r = estimateImpact({ ts: s.ts, values: s.values, onset: s.ts[pre]!, end: s.ts[pre + 23]! });
  assert.ok(r.effect.cumulative.lower < 0 && r.effect.cumulative.upper > 0, JSON.stringify(r.effect.cumulative));
  assert.equal(r.points, 24);
});

test('controls that share a market swing tighten the estimate', () => {
  const pre = W * 6;
  const s = syntheticSeries({ seed: 104, points: pre + W, noise: 0.01, marketWalk: 0.004, controls: 2, effect: { atIndex: pre, shape: 'step', size: -0.15 } });
  const truth = truthOf(s, pre, pre + W - 1);
  const end = s.ts[pre + W - 1]!;
  const without = estimateImpact({ ts: s.ts, values: s.values, onset: s.ts[pre]!, end });
  const withC = estimateImpact({ ts: s.ts, values: s.values, onset: s.ts[pre]!, end, controls: { names: ['a', 'b'], values: s.controls } });
  const width = (r: typeof without) => r.effect.cumulative.upper - r.effect.cumulative.lower;
  assert.ok(width(withC) < width(without), `${width(withC)} vs ${width(without)}`);
  assert.ok(withC.effect.cumulative.lower <= truth && truth <= withC.effect.cumulative.upper);
  assert.deepEqual(withC.model.controls, ['a', 'b']);
  assert.deepEqual(without.model.controls, []);
});

test('causality impact --json prints exactly the documented shape, candidates best first with ids echoed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'causal-impact-'));
  const pre = W * 3;
  const s = syntheticSeries({ seed: 105, points: pre + 48, noise: 0.02, controls: 1, effect: { atIndex: pre, shape: 'temporary', size: -0.4, durationPoints: 12 } });
  const iso = (t: number) => new Date(t).toISOString();
  writeFileSync(join(dir, 's.csv'), ['timestamp,value', ...s.ts.map((t, i) => `${iso(t)},${s.values[i]}`)].join('\n'));
  writeFileSync(join(dir, 'c.csv'), ['timestamp,c1', ...s.ts.map((t, i) => `${iso(t)},${s.controls[0]![i]}`)].join('\n'));
  const onset = s.ts[pre]!;
  const changes = [
    { id: 'docs-1', title: 'docs: typo', time: iso(onset - 5 * 60_000), paths: ['docs/a.md'] },
    { id: 'cause', title: 'hotfix: checkout payment timeout', component: 'checkout', time: iso(onset - 40 * 60_000), custom: 'kept' },
    { id: 'after', title: 'migration', time: iso(onset + 5 * 3_600_000) },
  ];
  writeFileSync(join(dir, 'ch.jsonl'), changes.map((c) => JSON.stringify(c)).join('\n'));
  const bin = fileURLToPath(new URL('../../bin/causality.js', import.meta.url));
  const out = execFileSync(process.execPath, [bin, 'impact', '--series', join(dir, 's.csv'), '--at', 'auto', '--controls', join(dir, 'c.csv'), '--changes', join(dir, 'ch.jsonl'), '--json'], { encoding: 'utf8' });
  const j = JSON.parse(out);
  assert.deepEqual(Object.keys(j), ['onset', 'end', 'effect', 'candidates']);
  assert.deepEqual(Object.keys(j.effect), ['cumulative', 'average', 'relative', 'pointwise']);
  for (const k of ['cumulative', 'average', 'relative']) assert.deepEqual(Object.keys(j.effect[k]), ['estimate', 'lower', 'upper']);
  assert.deepEqual(Object.keys(j.effect.pointwise[0]), ['ts', 'actual', 'expected', 'lower', 'upper']);
  assert.equal(j.onset, iso(onset));
  assert.ok(j.effect.cumulative.upper < 0);
  assert.deepEqual(j.candidates.map((c: { change: { id: string } }) => c.change.id), ['cause', 'docs-1'], 'after-onset change excluded');
  assert.equal(j.candidates[0].change.custom, 'kept', 'the change is echoed as given');
  assert.ok(j.candidates[0].reasons.some((r: string) => /before the onset/.test(r)));
});
