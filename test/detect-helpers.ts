// Hand-made events for detector tests: a StoredEvent with every column, defaults for a logged-in iOS shop user.
import { EVENT_COLUMNS, type StoredEvent } from '../src/event/stored-event.js';

export const T0 = Date.UTC(2026, 10, 2, 9, 0, 0);
let seq = 0;

export function ev(o: Partial<StoredEvent> & { country?: string } = {}): StoredEvent {
  const e: Record<string, unknown> = {};
  for (const c of EVENT_COLUMNS) e[c.name] = null;
  const { country, ...rest } = o;
  const n = seq++;
  return {
    ...(e as unknown as StoredEvent),
    event_id: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
    app_id: 'shop',
    device_id: 'dev-1',
    user_id: 'user-1',
    session_id: 's-1',
    type: 'screenView',
    ts: T0,
    received_at: T0,
    app_version: '2.3.0',
    app_build: '2300',
    platform: 'ios',
    os: 'iOS',
    device_model: 'iPhone 15',
    ip_hash: 'ip-home',
    props: JSON.stringify(country === undefined ? { 'context.country': 'FR' } : { 'context.country': country }),
    ...rest,
  };
}

/** A human session: lifecycle events, varied gaps, a walk over a small graph. Returns its events (ts ascending). */
export function humanSession(o: { start: number; session: string; device?: string; user?: string; screens?: string[]; country?: string; ip?: string }): StoredEvent[] {
  const screens = o.screens ?? ['Home', 'Search', 'ProductList', 'ProductDetail', 'Home'];
  const base = { session_id: o.session, device_id: o.device ?? 'dev-1', user_id: o.user ?? 'user-1', country: o.country, ip_hash: o.ip ?? 'ip-home' };
  const out: StoredEvent[] = [];
  let t = o.start;
  const gaps = [1200, 7400, 3100, 15800, 900, 5200, 2600, 11000];
  out.push(ev({ ...base, type: 'appStart', ts: t }));
  screens.forEach((s, i) => {
    t += gaps[i % gaps.length]!;
    out.push(ev({ ...base, type: 'screenView', screen_name: s, ts: t }));
  });
  t += 4000;
  out.push(ev({ ...base, type: 'appBackground', ts: t }));
  return out;
}
