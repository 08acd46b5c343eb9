// Rules: validation errors that name the file, rule and field; windows (count, sum, distinct) in event time;
// sequences; absences; cool-down per entity; hot reload that keeps the previous rules when a file breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DetectionEngine } from '../src/detect/engine.js';
import { compileRulesText, loadRulesDir, watchRules } from '../src/detect/rules-loader.js';
import { RuleError } from '../src/detect/rules-schema.js';
import type { Anomaly } from '../src/detect/anomaly.js';
import { T0, ev } from './detect-helpers.js';

const MIN = 60_000;

function refused(text: string, file = 'r.yaml'): RuleError {
  try {
    compileRulesText(text, file);
  } catch (err) {
    assert.ok(err instanceof RuleError, `not a RuleError: ${String(err)}`);
    return err;
  }
  assert.fail('accepted');
}

test('rule errors name the file, the rule and the field', () => {
  let e = refused('- id: bf\n  kind: window\n  key: ip\n  window: ten minutes\n  threshold: 5\n');
  assert.equal(e.file, 'r.yaml');
  assert.equal(e.field, 'rules[0] (bf).window');
  assert.match(e.detail, /duration like 30s, 10m/);
  e = refused('- id: x\n  kind: often\n  key: ip\n');
  assert.equal(e.field, 'rules[0] (x).kind');
  e = refused('- id: x\n  kind: event\n  key: ip\n  where: { typo_field: 1 }\n');
  assert.equal(e.field, 'typo_field');
  assert.match(e.message, /r\.yaml: x\.where\.typo_field/);
  e = refused('- id: x\n  kind: event\n  key: ip\n  where: { model.nope: { gt: 1 } }\n');
  assert.match(e.detail, /unknown model score \(known: markovP, markov, novelty/);
  e = refused('- id: x\n  kind: event\n  key: ip\n  where: { type: a }\n  severty: high\n');
  assert.match(e.detail, /unknown field\(s\) severty/);
  e = refused('rules: [ {id: a, kind: event, key: ip, where: {type: x}}, {id: a, kind: event, key: ip, where: {type: y}} ]');
  assert.match(e.detail, /duplicate rule id/);
  e = refused('{ not yaml', 'bad.yaml');
  assert.equal(e.field, '(syntax)');
  e = refused('{"rules": [{"id": "x", "kind": "window", "key": "ip", "window": "1m", "threshold": -1}]}', 'r.json');
  assert.equal(e.field, 'rules[0] (x).threshold');
});

function engineWith(yaml: string): DetectionEngine {
  return new DetectionEngine({ rules: compileRulesText(yaml, 'test.yaml') });
}
const fromRule = (as: Anomaly[], id: string) => as.filter((a) => a.source === `rule:${id}`);

test('window count: raises when the count in the window reaches the threshold, in event time, then cools down', () => {
  const engine = engineWith(`
- id: fails
  kind: window
  key: ip
  where: { type: userLogin, success: false }
  window: 10m
  threshold: 3
  cooldown: 30m
  severity: high
  category: brute_force`);
  const fail = (t: number, ip = 'ip-1') => engine.process(ev({ type: 'userLogin', success: false, ip_hash: ip, ts: t }));
  assert.deepEqual(fail(T0), []);
  assert.deepEqual(fail(T0 + 11 * MIN), [], 'the first one left the window');
  assert.deepEqual(engine.process(ev({ type: 'userLogin', success: true, ip_hash: 'ip-1', ts: T0 + 12 * MIN })), [], 'successes do not count');
  assert.deepEqual(fail(T0 + 13 * MIN, 'ip-2'), [], 'other IPs do not count');
  assert.deepEqual(fail(T0 + 14 * MIN), []);
  const hit = fail(T0 + 15 * MIN);
  assert.equal(hit.length, 1);
  const a = hit[0]!;
  assert.deepEqual([a.entityType, a.entityId, a.severity, a.category, a.ts], ['ip', 'ip-1', 'high', 'brute_force', T0 + 15 * MIN]);
  assert.equal(a.eventIds.length, 3);
  assert.match(a.explanation, /^3 events \(type=userLogin, success=false\) from ip ip-1 in 4 min \(window 10 min\); expected fewer than 3$/);
  assert.deepEqual(fail(T0 + 16 * MIN), [], 'cool-down');
  assert.deepEqual(fail(T0 + 30 * MIN), [], 'window no longer full');
  fail(T0 + 45 * MIN);
  fail(T0 + 46 * MIN);
  const again = fail(T0 + 47 * MIN);
  assert.equal(again.length, 1, 'after the cool-down and with a full window it raises again');
  assert.notEqual(again[0]!.id, a.id);
});

test('window sum and distinct, with props and model fields', () => {
  const engine = engineWith(`
- id: spend
  kind: window
  key: user
  where: { type: purchaseComplete }
  window: 1h
  aggregate: { sum: price }
  threshold: 100
- id: cards
  kind: window
  key: device
  where: { type: paymentDeclined }
  window: 1h
  aggregate: { distinct: props.cardId }
  threshold: 3`);
  const buy = (p: number, t: number) => engine.process(ev({ type: 'purchaseComplete', price: p, ts: t }));
  assert.deepEqual(buy(40, T0), []);
  assert.deepEqual(buy(50, T0 + MIN), []);
  const spend = fromRule(buy(10, T0 + 2 * MIN), 'spend');
  assert.equal(spend.length, 1);
  assert.match(spend[0]!.explanation, /sum of price 100 over 3 events/);
  const decline = (card: string, t: number) => engine.process(ev({ type: 'paymentDeclined', props: JSON.stringify({ cardId: card }), ts: t }));
  assert.deepEqual([...decline('c1', T0), ...decline('c1', T0 + MIN), ...decline('c2', T0 + 2 * MIN)], []);
  const cards = fromRule(decline('c3', T0 + 3 * MIN), 'cards');
  assert.equal(cards.length, 1);
  assert.equal(cards[0]!.details.value, 3);
});

test('sequence: A then B within T raises; B too late or without A does not', () => {
  const engine = engineWith(`
- id: ato
  kind: sequence
  key: user
  first: { type: userLogin, success: true }
  then: { type: { in: [profileUpdate, paymentMethodAdded] } }
  within: 30m
  severity: critical`);
  assert.deepEqual(engine.process(ev({ user_id: 'u-1', type: 'profileUpdate', ts: T0 })), [], 'B without A');
  engine.process(ev({ user_id: 'u-1', type: 'userLogin', success: true, ts: T0 + MIN }));
  assert.deepEqual(engine.process(ev({ user_id: 'u-2', type: 'profileUpdate', ts: T0 + 2 * MIN })), [], 'another user');
  const hit = engine.process(ev({ user_id: 'u-1', type: 'paymentMethodAdded', ts: T0 + 5 * MIN }));
  assert.equal(hit.length, 1);
  assert.equal(hit[0]!.severity, 'critical');
  assert.equal(hit[0]!.eventIds.length, 2);
  assert.match(hit[0]!.explanation, /userLogin \(type=userLogin, success=true\) at .*, then paymentMethodAdded .* 4 min later; expected no such sequence within 30 min/);
  engine.process(ev({ user_id: 'u-3', type: 'userLogin', success: true, ts: T0 }));
  assert.deepEqual(engine.process(ev({ user_id: 'u-3', type: 'profileUpdate', ts: T0 + 31 * MIN })), [], 'too late');
});

test('absence: B without a prior A (ever, or within T) raises; with A before it does not', () => {
  const engine = engineWith(`
- id: no-cart
  kind: absence
  key: user
  event: { type: purchaseComplete }
  without: { type: addToCart }
  within: 1d`);
  const hit = engine.process(ev({ user_id: 'u-1', type: 'purchaseComplete', ts: T0 }));
  assert.equal(hit.length, 1);
  assert.match(hit[0]!.explanation, /purchaseComplete \(type=purchaseComplete\) by user u-1 with no prior type=addToCart in the last 24\.0 h/);
  engine.process(ev({ user_id: 'u-2', type: 'addToCart', ts: T0 }));
  assert.deepEqual(engine.process(ev({ user_id: 'u-2', type: 'purchaseComplete', ts: T0 + MIN })), []);
  const late = engine.process(ev({ user_id: 'u-2', type: 'purchaseComplete', ts: T0 + 25 * 3_600_000 }));
  assert.deepEqual(late.map((a) => a.source), ['rule:no-cart'], 'the cart is older than the lookback');
});

test('rules directory: hot reload picks up changes; a broken file keeps its previous rules and reports the error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rules-'));
  try {
    writeFileSync(join(dir, 'a.yaml'), '- { id: one, kind: event, key: ip, where: { type: x } }\n');
    writeFileSync(join(dir, 'b.yaml'), '- { id: two, kind: event, key: ip, where: { type: y } }\n');
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    assert.deepEqual(loadRulesDir(dir).rules.map((r) => r.id), ['one', 'two']);
    const seen: string[][] = [];
    const errors: string[] = [];
    let changed: () => void = () => {};
    const w = watchRules(dir, { onRules: (r) => (seen.push(r.map((x) => x.id)), changed()), onError: (e) => errors.push(e.message), debounceMs: 30 });
    const next = () => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reload; seen ${JSON.stringify(seen)}`)), 5000);
      changed = () => (clearTimeout(timer), resolve());
    });
    try {
      assert.deepEqual(seen, [['one', 'two']]);
      let p = next();
      writeFileSync(join(dir, 'a.yaml'), '- { id: one, kind: event, key: ip, where: { type: x } }\n- { id: three, kind: event, key: ip, where: { type: z } }\n');
      await p;
      assert.deepEqual(w.current().map((r) => r.id), ['one', 'three', 'two']);
      p = next();
      writeFileSync(join(dir, 'a.yaml'), '- { id: one, kind: window, key: ip, window: soon, threshold: 1 }\n');
      await p;
      assert.deepEqual(w.current().map((r) => r.id), ['one', 'three', 'two'], 'a.yaml keeps its previous rules');
      assert.match(errors.at(-1)!, /a\.yaml: rules\[0\] \(one\)\.window: must be a duration/);
    } finally {
      w.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped rules/ directory loads without errors', async () => {
  const r = loadRulesDir(new URL('../../rules', import.meta.url).pathname);
  assert.deepEqual(r.errors, []);
  assert.ok(r.rules.length >= 10);
  for (const id of ['brute-force-ip', 'credential-stuffing-ip', 'account-takeover', 'card-testing-declines', 'purchase-without-cart']) assert.ok(r.rules.some((x) => x.id === id), id);
});
