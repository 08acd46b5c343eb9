// Live labelled traffic for `causality load --random` and `send`: the behavioural simulation started now, its app
// ids mapped onto the caller's apps, sized so that its natural event rate is about the rate asked for (so client
// timestamps stay close to the wall clock instead of running ahead of it).
import { simulate, type GenEvent, type Label } from './simulate.js';
import { APPS } from './world.js';

export interface LiveTrafficOptions {
  appIds: string[];
  /** Minimum simulated users (devices). */
  devices: number;
  seed: number;
  /** Events per second the caller will pull (sizes the population). */
  rate?: number;
  anomalyRate?: number;
  start?: number;
  onLabel?: (l: Label) => void;
}

/** Events a simulated user produces per second at activity 1 (≈ 2.5 sessions a day of ≈ 35 events). */
const BASE_USER_RATE = (2.5 * 35) / 86_400;
/** Most a user can produce (one session at a time, human timing). */
const MAX_USER_RATE = 0.1;

export function createLiveTraffic(o: LiveTrafficOptions): (now?: number) => GenEvent {
  const rate = o.rate ?? 50;
  const users = Math.max(o.devices, Math.ceil(rate / MAX_USER_RATE));
  const activity = Math.max(1, rate / (users * BASE_USER_RATE));
  const appMap = new Map(APPS.map((a, i) => [a.appId, o.appIds[i % o.appIds.length]!]));
  const it = simulate(
    { seed: o.seed, users, start: o.start ?? Date.now(), durationMs: 0, anomalyRate: o.anomalyRate ?? 0.02, activity },
    o.onLabel ?? (() => {}),
  );
  // Over HTTP the server sees the request's address: the simulated client IP is not sent (a raw IP must never be
  // stored, and props keep unknown context fields). Contexts are shared by a session's events: strip once per context.
  const stripped = new WeakMap<object, Record<string, unknown>>();
  return () => {
    const n = it.next();
    if (n.done) throw new Error('live traffic ended (it should not)');
    const e = n.value;
    e.appId = appMap.get(e.appId) ?? e.appId;
    const ctx = e.context as Record<string, unknown> | undefined;
    if (ctx && 'ip' in ctx) {
      let c = stripped.get(ctx);
      if (!c) {
        const { ip: _ip, ...rest } = ctx;
        stripped.set(ctx, (c = rest));
      }
      e.context = c;
    }
    return e;
  };
}
