// Event makers for dev commands and benchmarks: a uniform stream and a varied ("random") one with sessions.
// `causality load --random` and `send` use the labelled behavioural generator (live.ts); `createVariedEvents` stays as
// the benchmarks' fast, timestamp-driven stream.
import { v4 as uuidv4 } from 'uuid';

export { rng } from './rng.js';
import { rng } from './rng.js';

const SCREENS = ['Home', 'Search', 'ProductList', 'ProductDetail', 'Cart', 'Checkout', 'Profile', 'Settings'];
const BUTTONS = ['login', 'search', 'add_to_cart', 'checkout', 'pay', 'back', 'menu', 'share'];
const PRODUCTS = Array.from({ length: 50 }, (_, i) => `sku-${1000 + i}`);
const NETWORKS = ['wifi', 'cellular', 'none'];
const VERSIONS = [
  { appVersion: '2.3.0', appBuild: '230', platform: 'ios', os: 'iOS', osVersion: '17.5' },
  { appVersion: '2.3.0', appBuild: '231', platform: 'android', os: 'Android', osVersion: '14' },
  { appVersion: '2.2.1', appBuild: '221', platform: 'android', os: 'Android', osVersion: '13' },
];

export function uniformEvent(appId: string, i: number, now = Date.now()): Record<string, unknown> {
  return {
    eventId: uuidv4(),
    appId,
    deviceId: `device-${i % 1000}`,
    timestamp: now,
    screenView: { screenName: SCREENS[i % SCREENS.length] },
  };
}

export interface VariedOptions {
  appIds: string[];
  devices: number;
  seed: number;
}

/** A stream of plausible app events: sessions that start, browse, sometimes buy, and end. */
export function createVariedEvents(o: VariedOptions) {
  const rand = rng(o.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  interface Session { appId: string; deviceId: string; userId: string | null; sessionId: string; ctx: (typeof VERSIONS)[number]; screen: string; left: number }
  const active: Session[] = [];
  function newSession(): Session {
    const d = Math.floor(rand() * o.devices);
    return {
      appId: o.appIds[d % o.appIds.length]!,
      deviceId: `dev-${d.toString(36).padStart(5, '0')}`,
      userId: rand() < 0.6 ? `user-${(d * 7919) % (o.devices * 2)}` : null,
      sessionId: uuidv4(),
      ctx: VERSIONS[d % VERSIONS.length]!,
      screen: 'Home',
      left: 5 + Math.floor(rand() * 40),
    };
  }
  return function nextEvent(now = Date.now()): Record<string, unknown> {
    if (active.length < 50 || rand() < 0.02) active.push(newSession());
    const idx = Math.floor(rand() * active.length);
    const s = active[idx]!;
    const base = {
      eventId: uuidv4(),
      appId: s.appId,
      deviceId: s.deviceId,
      userId: s.userId,
      sessionId: s.sessionId,
      timestamp: now,
      context: { ...s.ctx, locale: 'en-GB' },
    };
    s.left--;
    if (s.left <= 0) {
      active.splice(idx, 1);
      return { ...base, appBackground: {} };
    }
    const r = rand();
    if (r < 0.45) {
      s.screen = pick(SCREENS);
      return { ...base, screenView: { screenName: s.screen } };
    }
    if (r < 0.7) return { ...base, buttonTap: { buttonId: pick(BUTTONS), screenName: s.screen } };
    if (r < 0.8) return { ...base, productView: { productId: pick(PRODUCTS), price: Math.round(rand() * 20000) / 100, currency: 'EUR' } };
    if (r < 0.87) return { ...base, addToCart: { productId: pick(PRODUCTS), quantity: 1 + Math.floor(rand() * 3), price: Math.round(rand() * 20000) / 100, currency: 'EUR' } };
    if (r < 0.9) return { ...base, purchaseComplete: { orderId: `ord-${uuidv4().slice(0, 8)}`, totalAmount: Math.round(rand() * 50000) / 100, currency: 'EUR', itemCount: 1 + Math.floor(rand() * 4) } };
    if (r < 0.93) return { ...base, userLogin: { method: 'password', success: rand() > 0.05 } };
    if (r < 0.96) return { ...base, networkChange: { networkType: pick(NETWORKS) } };
    if (r < 0.98) return { ...base, appForeground: {} };
    return { ...base, type: 'levelComplete', properties: { level: Math.floor(rand() * 50), stars: Math.floor(rand() * 3) } };
  };
}
