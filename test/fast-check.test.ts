// The ajv fast path may only ever accept what zod accepts (zod is the schema; ajv answers "valid" faster).
// Random mutations of valid events: wrong types, lengths at and past the limits, astral characters, nulls, bad ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_SCHEMAS, envelopeSchema, type KnownKind } from '../src/event/envelope.js';
import { compileFastCheck } from '../src/event/fast-check.js';
import { rng } from '../src/generate/traffic.js';

const rand = rng(20261124);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const text = (n: number) => Array.from({ length: n }, () => pick(['a', 'Z', '9', ' ', '-', '😀', 'é', '\u0001', '.'])).join('');
// Inputs come from JSON.parse, so no NaN or Infinity (which ajv's "number" would let through and zod would not).
const values = (): unknown => pick([null, undefined, 0, -1, 1.5, 1e13, true, '', ' ', text(3), text(40), text(65), text(129), text(257), text(300), '😀'.repeat(20), '😀'.repeat(40), '😀'.repeat(200), '😀'.repeat(257), [], {}, { a: 1 }, ['x']]);

function mutate(base: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(base);
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const k = pick(keys);
    const v = values();
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

test('ajv never accepts an envelope zod refuses', () => {
  const fast = compileFastCheck(envelopeSchema);
  const base = { eventId: '6f1c6e1e-7a4b-4c1e-9d51-0c7a3f0e2b44', appId: 'shop', deviceId: 'd1', userId: 'u1', sessionId: 's1', type: 'screenView', timestamp: 1795506043836, context: { appVersion: '2.3.0', platform: 'ios', locale: 'en-GB' }, url: 'https://x.example/a' };
  const keys = [...Object.keys(base), 'properties', 'props', 'referrer'];
  let fastAccepted = 0;
  let zodRefused = 0;
  for (let i = 0; i < 20_000; i++) {
    const input = rand() < 0.3 ? { ...mutate(base, keys), context: mutate(base.context, ['appVersion', 'appBuild', 'platform', 'os', 'osVersion', 'deviceModel', 'locale', 'userAgent']) } : mutate(base, keys);
    const zodOk = envelopeSchema.safeParse(input).success;
    const ajvOk = fast(input);
    if (ajvOk) fastAccepted++;
    if (!zodOk) zodRefused++;
    if (ajvOk && !zodOk) assert.fail(`ajv accepted what zod refuses: ${JSON.stringify(input)}`);
  }
  // Both outcomes were exercised, so the property was tested, not vacuously true.
  assert.ok(fastAccepted > 1000 && zodRefused > 1000, `accepted ${fastAccepted}, refused ${zodRefused}`);
});

test('ajv never accepts a kind body zod refuses', () => {
  const bases: Record<KnownKind, Record<string, unknown>> = {
    screenView: { screenName: 'Home' },
    screenExit: { screenName: 'Home', durationMs: 1200 },
    buttonTap: { buttonId: 'pay', screenName: 'Cart' },
    userLogin: { userId: 'u1', method: 'password', success: true },
    userLogout: { userId: 'u1' },
    productView: { productId: 'sku-1', price: 9.99, currency: 'EUR' },
    addToCart: { productId: 'sku-1', quantity: 2, price: 9.99, currency: 'EUR' },
    purchaseComplete: { orderId: 'o1', totalAmount: 19.98, currency: 'EUR', itemCount: 2 },
    appStart: { coldStart: true },
    appBackground: {},
    appForeground: {},
    networkChange: { networkType: 'wifi' },
    customEvent: { name: 'level', params: { n: 1 } },
  };
  for (const [kind, base] of Object.entries(bases) as Array<[KnownKind, Record<string, unknown>]>) {
    const fast = compileFastCheck(KIND_SCHEMAS[kind]);
    const keys = Object.keys(base).length ? Object.keys(base) : ['x'];
    for (let i = 0; i < 2_000; i++) {
      const input = mutate(base, keys);
      if (fast(input) && !KIND_SCHEMAS[kind].safeParse(input).success) assert.fail(`${kind}: ajv accepted what zod refuses: ${JSON.stringify(input)}`);
    }
  }
});
