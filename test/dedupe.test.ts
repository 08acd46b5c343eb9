// The ingest dedupe table on its own: claims, in-flight outcomes, failed appends, apps kept apart, and the window of
// remembered ids across generation rolls.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventIdDedupe, hashEventIds } from '../src/ingest/dedupe.js';

/** claim() takes an id's hashes, as the checked body carries them. */
const claim = (d: EventIdDedupe, app: string, id: string, seq: number) => d.claim(app, hashEventIds(Buffer.from(id, 'latin1'), 1, id.length), 0, seq);

const durable = Promise.resolve(true);

describe('EventIdDedupe', () => {
  test('new, then seen once durable; repeated inside a request; other apps apart', () => {
    const d = new EventIdDedupe(1000);
    const a = d.startRequest(durable);
    assert.equal(claim(d, 'app', 'e1', a), 'new');
    assert.equal(claim(d, 'app', 'e1', a), 'same-request');
    assert.equal(claim(d, 'other', 'e1', a), 'new', 'the same id in another app is another event');
    d.settle(a, true);
    const b = d.startRequest(durable);
    assert.equal(claim(d, 'app', 'e1', b), 'seen');
    assert.equal(claim(d, 'other', 'e1', b), 'seen');
    assert.equal(claim(d, 'app', 'e2', b), 'new');
  });

  test('an id in flight in another request answers with that request’s outcome; a failed append is forgotten', async () => {
    const d = new EventIdDedupe(1000);
    let settleA!: (ok: boolean) => void;
    const a = d.startRequest(new Promise<boolean>((r) => (settleA = r)));
    assert.equal(claim(d, 'app', 'x', a), 'new');
    const b = d.startRequest(durable);
    const pending = claim(d, 'app', 'x', b);
    assert.ok(pending instanceof Promise);
    d.settle(a, false);
    settleA(false);
    assert.equal(await pending, false);
    d.settle(b, true);
    const c = d.startRequest(durable);
    assert.equal(claim(d, 'app', 'x', c), 'new', 'a retry after a failed append is accepted');
  });

  test('remembers at least the window’s newest ids across rolls, and forgets older ones', () => {
    const window = 500;
    const d = new EventIdDedupe(window);
    const ids = Array.from({ length: 5 * window }, (_, i) => `id-${i}`);
    for (let i = 0; i < ids.length; i += 50) {
      const r = d.startRequest(durable);
      for (let k = i; k < i + 50; k++) assert.equal(claim(d, 'app', ids[k]!, r), 'new');
      d.settle(r, true);
    }
    const check = d.startRequest(durable);
    for (const id of ids.slice(-window)) assert.equal(claim(d, 'app', id, check), 'seen', id);
    // Two generations back is forgotten (the window is "at least", not "exactly").
    assert.equal(claim(d, 'app', ids[0]!, check), 'new');
  });

  test('a request in flight across rolls does not touch the slots that replaced its forgotten ones', () => {
    const d = new EventIdDedupe(100);
    const slow = d.startRequest(new Promise<boolean>(() => {}));
    assert.equal(claim(d, 'app', 'slow-1', slow), 'new');
    for (let i = 0; i < 400; i++) {
      const r = d.startRequest(durable);
      assert.equal(claim(d, 'app', `fast-${i}`, r), 'new');
      d.settle(r, true);
    }
    d.settle(slow, false); // its slot was forgotten two rolls ago and may hold another id now
    const check = d.startRequest(durable);
    for (let i = 300; i < 400; i++) assert.equal(claim(d, 'app', `fast-${i}`, check), 'seen');
  });

  test('warm-up: remembered ids are seen', () => {
    const d = new EventIdDedupe(1000);
    d.remember('app', 'old-1');
    d.remember('app', 'old-1');
    const r = d.startRequest(durable);
    assert.equal(claim(d, 'app', 'old-1', r), 'seen');
    assert.equal(claim(d, 'app', 'old-2', r), 'new');
  });
});
