// Warming the detector (DETECTOR_WARM_FROM) teaches the rules' state too, not only the models: an account that put
// something in its cart during the known-good traffic is not a "purchase without cart" when it pays live.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestNode, waitFor } from './helpers.js';

test('rules learn from the warm-up file: a cart filled there counts for a live purchase', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'causality-warm-rules-'));
  const file = join(dir, 'good.jsonl');
  const t0 = Date.now() - 600_000;
  const cart = (userId: string, timestamp: number) => ({
    appId: 'appA', deviceId: `dev-${userId}`, userId, type: 'addToCart', productId: 'sku-1', quantity: 1, price: 12.5, currency: 'EUR', timestamp,
  });
  await writeFile(file, `${[cart('buyer-warm', t0), cart('someone-else', t0 + 1000)].map((e) => JSON.stringify(e)).join('\n')}\n`);
  const t = await startTestNode({ DETECTOR_WARM_FROM: file });
  try {
    const buy = (userId: string, i: number) => ({
      deviceId: `dev-${userId}`, userId, type: 'purchaseComplete', orderId: `o-${i}`, totalAmount: 12.5, currency: 'EUR', itemCount: 1, timestamp: Date.now() - 60_000 + i,
    });
    // The warmed account pays first; the one never seen with a cart pays after it, in the same request.
    const r = await t.post('/v1/events/batch', { events: [buy('buyer-warm', 0), buy('buyer-cold', 1)] }, { key: t.keys.appA });
    assert.equal(r.status, 202);
    await waitFor('the cold buyer flagged', async () => {
      const a = await t.get('/v1/anomalies?entity_id=buyer-cold&source=rule:purchase-without-cart', { key: t.keys.appA });
      return a.body.items?.length ? a.body : null;
    });
    const warm = await t.get('/v1/anomalies?entity_id=buyer-warm', { key: t.keys.appA });
    assert.deepEqual(warm.body.items, [], 'the warm-up file showed this account filling its cart');
  } finally {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  }
});
