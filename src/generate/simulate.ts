// The labelled behavioural generator: a discrete-event simulation of app users (sessions with human timing, lifecycle
// events, logins, a checkout funnel, travel, new phones, a mid-period release) and of attackers, each attack instance
// labelled with its ground truth. Deterministic from the seed; events come out in time order; runs forever when asked.
//
// Every actor (a user, an attacker, the attack spawner) is a generator function with its own seeded stream, yielding
// its events in its own time order; a heap merges them. Attack events carry their label under a symbol key (invisible
// to JSON), so the scheduler records exactly the attack events it emitted.
import {
  APPS,
  COUNTRIES,
  DEVICE_MODELS,
  DIURNAL,
  DIURNAL_MAX,
  WEEKLY,
  appUserAgent,
  carrierIp,
  expo,
  homeIp,
  intBetween,
  logNormal,
  mixSeed,
  pick,
  pickWeighted,
  proxyIp,
  rng,
  type AppSpec,
  type AppVersionSpec,
  type Country,
  type DeviceModel,
  type Edge,
  type Rand,
} from './world.js';
import { fileIpHash } from '../detect/ip.js';

export const SCENARIOS = [
  'brute_force',
  'credential_stuffing',
  'account_takeover',
  'card_testing',
  'payment_fraud',
  'long_session',
  'bot',
  'modified_client',
] as const;
export type Scenario = (typeof SCENARIOS)[number];
export type EntityType = 'device' | 'user' | 'session' | 'ip';

/** Ground truth for one attack instance. */
export interface Label {
  labelId: string;
  scenario: Scenario;
  entityType: EntityType;
  /** For ip entities: the file IP hash (what backtests and anomalies call the IP). */
  entityId: string;
  appId: string;
  startTs: number;
  endTs: number;
  /** The attack's own events (normal-looking events the attacker mixes in included). */
  eventIds: string[];
  /** Other entities the attack used (its device, IP, session, the victim account). */
  related: Array<{ entityType: EntityType; entityId: string }>;
  details: Record<string, unknown>;
}

/** An event in the HTTP envelope's flat shape (what `POST /v1/events/batch` and backtest files take). */
export type GenEvent = Record<string, unknown> & { eventId: string; appId: string; deviceId: string; type: string; timestamp: number };

export interface GenerateOptions {
  seed: number;
  users: number;
  /** Simulation start, epoch ms. */
  start: number;
  /** Simulated duration in ms; 0 = forever. */
  durationMs: number;
  /** Attack instances per normal session (seed 001's knob). */
  anomalyRate: number;
  scenarios?: readonly Scenario[];
  /** Attacks start no earlier / no later than these (e.g. keep a clean training prefix). */
  attacksFrom?: number;
  attacksUntil?: number;
  /** When the new app versions are released (default: a third into the period, or start + 8 h when endless). */
  releaseAt?: number;
  appIds?: readonly string[];
  /** Multiplies every user's sessions per day (live load traffic wants many users active at once). */
  activity?: number;
  /** Attacks started at a given time, besides the random ones (the demo's scripted incidents). */
  injections?: readonly Injection[];
}

/** What a tampered client does that the real app cannot (modified_client picks 2–4 at random unless told). */
export const CLIENT_TRAITS = ['unknown_build', 'impossible_transitions', 'purchase_without_cart', 'inhuman_taps', 'skipped_screens'] as const;
export type ClientTrait = (typeof CLIENT_TRAITS)[number];

/** One scripted attack instance: its scenario, when it starts, in which app; traits for modified_client. */
export interface Injection {
  at: number;
  scenario: Scenario;
  appId?: string;
  traits?: readonly ClientTrait[];
}

const LABEL = Symbol('label');
type Labelled = GenEvent & { [LABEL]?: Label };
type Wake = { wakeAt: number };
type Step = Labelled | Wake;
type Actor = Iterator<Step, void>;

interface Device {
  id: string;
  model: DeviceModel;
  osVersion: string;
  version: AppVersionSpec;
  build: string;
  userAgent: string;
}

interface User {
  id: string;
  index: number;
  app: AppSpec;
  home: Country;
  homeIp: string;
  device: Device;
  sessionsPerDay: number;
  loggedIn: Set<string>;
  cart: number;
  cartValue: number;
  card: string;
  sessions: number;
  travel: { from: number; to: number; country: Country } | null;
  newPhoneAt: number | null;
}

interface SessionCtx {
  r: Rand;
  app: AppSpec;
  device: Device;
  userId: string | null;
  sessionId: string;
  context: Record<string, unknown>;
  t: number;
  label: Label | null;
  currency: string;
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const DIURNAL_MEAN = DIURNAL.reduce((a, b) => a + b, 0) / 24;
const WEEKLY_MAX = Math.max(...WEEKLY);
const WEEKLY_MEAN = WEEKLY.reduce((a, b) => a + b, 0) / 7;
const hex = (n: number, w: number) => (n >>> 0).toString(16).padStart(w, '0').slice(-w);

/** Parses `2h`, `30m`, `45s`, `1d`, `500ms` or bare ms; `0` means forever. */
export function parseSpan(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) throw new Error(`not a duration: ${v} (use e.g. 90s, 30m, 2h, 1d)`);
  const unit = { ms: 1, s: 1000, m: MIN, h: HOUR, d: DAY }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unit;
}

/**
 * Runs the simulation: yields events in time order; calls `onLabel` once per attack instance, when it ends (or at
 * the end of the period for instances still running).
 */
export function* simulate(o: GenerateOptions, onLabel: (l: Label) => void): Generator<GenEvent, void> {
  const end = o.durationMs > 0 ? o.start + o.durationMs : Infinity;
  const releaseAt = o.releaseAt ?? (o.durationMs > 0 ? o.start + o.durationMs / 3 : o.start + 8 * HOUR);
  const attacksFrom = o.attacksFrom ?? o.start;
  const attacksUntil = o.attacksUntil ?? end;
  const scenarios = o.scenarios ?? SCENARIOS;
  const apps = o.appIds ? APPS.filter((a) => o.appIds!.includes(a.appId)) : APPS;
  if (apps.length === 0) throw new Error(`no known app among ${o.appIds?.join(', ')} (known: ${APPS.map((a) => a.appId).join(', ')})`);
  const activity = o.activity ?? 1;
  const seedHex = hex(mixSeed(o.seed, 0xabcdef), 8);
  const world = rng(mixSeed(o.seed, 1));

  // Identifiers come from shared counters, so attackers' ids look exactly like everyone else's.
  let eventSeq = 0;
  let deviceSeq = 0;
  let userSeq = 0;
  let sessionSeq = 0;
  let labelSeq = 0;
  const eventId = () => {
    const n = eventSeq++;
    const lo = mixSeed(o.seed, n);
    return `${seedHex}-${hex(n / 0x100000000, 4)}-4${hex(lo, 3)}-8${hex(lo >>> 12, 3)}-${hex(n >>> 16, 4)}${hex(n, 4)}${hex(lo >>> 7, 4)}`;
  };
  const newDeviceId = () => `dev-${seedHex.slice(0, 4)}${(deviceSeq++).toString(36).padStart(6, '0')}`;
  const newUserId = () => `usr-${seedHex.slice(4)}${(userSeq++).toString(36).padStart(6, '0')}`;
  const newSessionId = () => `${seedHex}-${hex(sessionSeq / 0x10000, 4)}-${hex(sessionSeq++, 4)}`;

  const versionAt = (app: AppSpec, r: Rand, t: number): AppVersionSpec =>
    t >= releaseAt && r() < 0.25 ? app.versions[app.versions.length - 1]! : app.versions[0]!;
  const makeDevice = (r: Rand, app: AppSpec, version: AppVersionSpec, model?: DeviceModel): Device => {
    const m = model ?? pickWeighted(r, DEVICE_MODELS, (d) => d.weight);
    const osVersion = pick(r, m.osVersions);
    const build = version.builds[m.platform];
    return { id: newDeviceId(), model: m, osVersion, version, build, userAgent: appUserAgent(app, version.version, build, m, osVersion) };
  };
  const upgrade = (app: AppSpec, d: Device, v: AppVersionSpec) => {
    d.version = v;
    d.build = v.builds[d.model.platform];
    d.userAgent = appUserAgent(app, v.version, d.build, d.model, d.osVersion);
  };

  // ---- population -----------------------------------------------------------------------------------------------
  const users: User[] = [];
  const usersByApp = new Map<string, User[]>();
  for (let i = 0; i < o.users; i++) {
    const app = apps[i % apps.length]!;
    const home = pickWeighted(world, COUNTRIES, (c) => c.weight);
    const u: User = {
      id: newUserId(),
      index: i,
      app,
      home,
      homeIp: homeIp(world, home),
      device: makeDevice(world, app, app.versions[0]!),
      sessionsPerDay: Math.min(20, Math.max(0.3, logNormal(world, 2.5, 0.7))) * activity,
      loggedIn: new Set(),
      cart: 0,
      cartValue: 0,
      card: `card-${hex(world() * 0xffffffff, 8)}`,
      sessions: 0,
      travel: null,
      newPhoneAt: null,
    };
    u.loggedIn.add(u.device.id);
    const span = o.durationMs > 0 ? o.durationMs : 7 * DAY;
    // Noise that looks like an attack but is not: trips abroad and new phones.
    if (world() < 0.03) {
      const from = o.start + world() * span;
      u.travel = { from, to: from + (1 + world() * 6) * DAY, country: pickWeighted(world, COUNTRIES.filter((c) => c !== home), (c) => c.weight) };
    }
    if (world() < 0.02) u.newPhoneAt = o.start + world() * span;
    users.push(u);
    const list = usersByApp.get(app.appId) ?? [];
    list.push(u);
    usersByApp.set(app.appId, list);
  }

  // ---- event building ---------------------------------------------------------------------------------------------
  function contextFor(d: Device, country: Country, ip: string, network: string, app: AppSpec): Record<string, unknown> {
    return {
      appVersion: d.version.version,
      appBuild: d.build,
      platform: d.model.platform,
      os: d.model.os,
      osVersion: d.osVersion,
      deviceModel: d.model.model,
      locale: country.locale,
      userAgent: d.userAgent,
      networkType: network,
      ip,
      country: country.code,
      app: app.uaName,
    };
  }
  function ev(s: SessionCtx, type: string, fields?: Record<string, unknown>): Labelled {
    const e: Labelled = {
      eventId: eventId(),
      appId: s.app.appId,
      deviceId: s.device.id,
      userId: s.userId,
      sessionId: s.sessionId,
      type,
      timestamp: Math.round(s.t),
      context: s.context,
      ...fields,
    };
    if (s.label) e[LABEL] = s.label;
    return e;
  }
  const think = (r: Rand, median = 5000) => Math.min(180_000, Math.max(500, logNormal(r, median, 0.8)));
  const productOf = (r: Rand, app: AppSpec) => `sku-${app.appId}-${intBetween(r, 1, app.products)}`;
  const priceOf = (r: Rand, app: AppSpec) => Math.round(Math.min(2000, logNormal(r, app.priceMedian, 0.7)) * 100) / 100;

  /** A walk over the version's graph from `screen`, `steps` moves long; `cart` tracks the cart between sessions. */
  function* browse(
    s: SessionCtx,
    screen: string,
    steps: number,
    cart: { items: number; value: number; card: string },
    opts: { thinkMedian?: number; idleTaps?: boolean; lifecycle?: boolean; fixedGap?: () => number } = {},
  ): Generator<Labelled, string> {
    const r = s.r;
    const gap = opts.fixedGap ?? (() => think(r, opts.thinkMedian));
    let product = productOf(r, s.app);
    let price = priceOf(r, s.app);
    let purchased = 0;
    for (let i = 0; i < steps; i++) {
      s.t += gap();
      if (opts.idleTaps !== false && r() < 0.12) {
        const idle = s.app.idleButtons[screen];
        if (idle) {
          yield ev(s, 'buttonTap', { buttonId: pick(r, idle), screenName: screen });
          s.t += opts.fixedGap ? gap() : think(r, 2500);
        }
      }
      if (opts.lifecycle !== false && r() < 0.025) {
        // A short trip to another app: same session when back within a few minutes.
        yield ev(s, 'appBackground');
        s.t += Math.min(4 * MIN, expo(r, 50_000));
        yield ev(s, 'appForeground');
        s.t += think(r, 1500);
      }
      if (opts.lifecycle !== false && r() < 0.01) {
        yield ev(s, 'networkChange', { networkType: r() < 0.5 ? 'wifi' : 'cellular' });
      }
      const edges = s.device.version.graph[screen]!.filter((e) => (!e.needsCart && e.action !== 'purchase') || cart.items > 0);
      // Having just ordered, people rarely fill a new cart in the same session.
      const edge: Edge = pickWeighted(r, edges, (e) => (purchased > 0 && e.action === 'addToCart' ? e.w * 0.05 : e.w));
      if (edge.via) {
        yield ev(s, 'buttonTap', { buttonId: edge.via, screenName: screen });
        s.t += opts.fixedGap ? gap() : 300 + r() * 900;
      }
      if (edge.action === 'addToCart') {
        const qty = r() < 0.85 ? 1 : 2;
        cart.items += qty;
        cart.value += price * qty;
        yield ev(s, 'addToCart', { productId: product, quantity: qty, price, currency: s.currency });
        s.t += opts.fixedGap ? gap() : 200 + r() * 500;
      } else if (edge.action === 'purchase') {
        if (r() < 0.025) {
          // A genuine decline (expired card, typo): the user fixes it and pays again.
          yield ev(s, 'paymentDeclined', { properties: { cardId: cart.card, amount: Math.round(cart.value * 100) / 100, reason: pick(r, ['insufficient_funds', 'do_not_honor', 'expired_card']) } });
          s.t += think(r, 8000);
          yield ev(s, 'buttonTap', { buttonId: edge.via, screenName: screen });
          s.t += 400 + r() * 900;
        }
        yield ev(s, 'purchaseComplete', {
          orderId: `ord-${hex(r() * 0xffffffff, 8)}`,
          totalAmount: Math.round(Math.max(cart.value, 1) * 100) / 100,
          currency: s.currency,
          itemCount: Math.max(1, cart.items),
          properties: { cardId: cart.card },
        });
        cart.items = 0;
        cart.value = 0;
        purchased++;
        s.t += opts.fixedGap ? gap() : 300 + r() * 700;
      } else if (edge.action === 'profileUpdate') {
        yield ev(s, 'profileUpdate', { properties: { fields: pick(r, [['phone'], ['address'], ['email'], ['name', 'address']]) } });
        s.t += 300 + r() * 500;
      } else if (edge.action === 'paymentMethodAdded') {
        cart.card = `card-${hex(r() * 0xffffffff, 8)}`;
        yield ev(s, 'paymentMethodAdded', { properties: { cardId: cart.card, brand: pick(r, ['visa', 'mastercard', 'amex']) } });
        s.t += 300 + r() * 500;
      } else if (edge.action === 'search') {
        yield ev(s, 'search', { properties: { queryLength: intBetween(r, 3, 24) } });
        s.t += opts.fixedGap ? gap() : 300 + r() * 700;
      }
      const previous = screen;
      screen = edge.to;
      yield ev(s, 'screenView', { screenName: screen, previousScreen: previous });
      if (screen === 'ProductDetail' || screen === 'MenuItem') {
        product = productOf(r, s.app);
        price = priceOf(r, s.app);
        s.t += opts.fixedGap ? gap() : 200 + r() * 600;
        yield ev(s, 'productView', { productId: product, price, currency: s.currency });
      }
    }
    return screen;
  }

  function* login(s: SessionCtx, account: string, failures: number, succeed: boolean): Generator<Labelled, void> {
    const r = s.r;
    yield ev(s, 'screenView', { screenName: 'Login' });
    for (let i = 0; i < failures; i++) {
      s.t += think(r, 7000);
      const e = ev(s, 'userLogin', { userId: account, method: 'password', success: false });
      e.userId = account;
      yield e;
    }
    if (!succeed) return;
    s.t += think(r, 7000);
    yield ev(s, 'userLogin', { userId: account, method: 'password', success: true });
    s.userId = account;
    s.t += 400 + r() * 600;
  }

  // ---- normal users -------------------------------------------------------------------------------------------------
  const activityAt = (u: User, t: number) => {
    const country = u.travel && t >= u.travel.from && t < u.travel.to ? u.travel.country : u.home;
    const local = t + country.utcOffset * HOUR;
    const hour = Math.floor((local % DAY) / HOUR);
    const dow = Math.floor(local / DAY + 4) % 7; // 1970-01-01 was a Thursday
    return (DIURNAL[hour]! / DIURNAL_MAX) * (WEEKLY[dow]! / WEEKLY_MAX);
  };

  function* userActor(u: User): Actor {
    const r = rng(mixSeed(o.seed, 1000 + u.index));
    const peakRate = (u.sessionsPerDay * (DIURNAL_MAX / DIURNAL_MEAN) * (WEEKLY_MAX / WEEKLY_MEAN)) / DAY;
    let t = o.start;
    for (;;) {
      // Next session start: thinning of a Poisson process with the user's diurnal and weekly rate.
      do t += expo(r, 1 / peakRate);
      while (r() > activityAt(u, t));
      if (t >= end) return;
      yield { wakeAt: t };
      t = yield* userSession(u, r, t);
    }
  }

  function* userSession(u: User, r: Rand, t0: number): Generator<Labelled, number> {
    const app = u.app;
    if (u.newPhoneAt !== null && t0 >= u.newPhoneAt) {
      // A new phone: a new device, a new model, a login from it. Same home, same habits.
      u.device = makeDevice(r, app, u.device.version);
      u.newPhoneAt = null;
    }
    if (t0 >= releaseAt && u.device.version !== app.versions[app.versions.length - 1] && r() < 0.35) {
      upgrade(app, u.device, app.versions[app.versions.length - 1]!);
    }
    const traveling = u.travel && t0 >= u.travel.from && t0 < u.travel.to ? u.travel.country : null;
    const country = traveling ?? u.home;
    const onWifi = r() < (traveling ? 0.35 : 0.62);
    const ip = onWifi ? (traveling ? homeIp(r, country) : u.homeIp) : carrierIp(r, country);
    const s: SessionCtx = {
      r,
      app,
      device: u.device,
      userId: u.id,
      sessionId: newSessionId(),
      context: contextFor(u.device, country, ip, onWifi ? 'wifi' : 'cellular', app),
      t: t0,
      label: null,
      currency: u.home.currency,
    };
    u.sessions++;
    const cold = r() < 0.55;
    yield ev(s, cold ? 'appStart' : 'appForeground', cold ? { coldStart: true } : undefined);
    s.t += 300 + r() * 1500;
    if (!u.loggedIn.has(u.device.id) || r() < 0.04) {
      s.userId = null;
      const mistypes = r() < 0.07 ? (r() < 0.2 ? 2 : 1) : 0;
      yield* login(s, u.id, mistypes, true);
      u.loggedIn.add(u.device.id);
    }
    yield ev(s, 'screenView', { screenName: app.entry });
    // Most sessions are short; a few users linger for an hour (reading reviews, comparing), which is normal.
    const longish = r() < 0.02;
    const steps = longish ? intBetween(r, 40, 110) : Math.max(1, Math.round(expo(r, 12)));
    const cart = { items: u.cart, value: u.cartValue, card: u.card };
    yield* browse(s, app.entry, steps, cart, { thinkMedian: longish ? 14_000 : 5000 });
    u.cart = cart.items;
    u.cartValue = cart.value;
    u.card = cart.card;
    s.t += think(r, 3000);
    yield ev(s, 'appBackground');
    return s.t;
  }

  // ---- attackers ----------------------------------------------------------------------------------------------------
  function openLabel(scenario: Scenario, entityType: EntityType, entityId: string, appId: string, details: Record<string, unknown>): Label {
    return { labelId: `lbl-${seedHex}-${labelSeq++}`, scenario, entityType, entityId, appId, startTs: Infinity, endTs: -Infinity, eventIds: [], related: [], details };
  }
  const relate = (l: Label, entityType: EntityType, entityId: string | null) => {
    if (!entityId || (l.entityType === entityType && l.entityId === entityId)) return;
    if (!l.related.some((x) => x.entityType === entityType && x.entityId === entityId)) l.related.push({ entityType, entityId });
  };
  const attackerCountry = (r: Rand, not?: Country) => pickWeighted(r, COUNTRIES.filter((c) => c !== not), (c) => c.weight);
  function attackerSession(r: Rand, app: AppSpec, label: Label, t: number, o2: { device?: Device; country?: Country; ip?: string; userId?: string | null } = {}): SessionCtx {
    const country = o2.country ?? attackerCountry(r);
    const device = o2.device ?? makeDevice(r, app, versionAt(app, r, t));
    const ip = o2.ip ?? (r() < 0.5 ? proxyIp(r) : carrierIp(r, country));
    const s: SessionCtx = {
      r,
      app,
      device,
      userId: o2.userId ?? null,
      sessionId: newSessionId(),
      context: contextFor(device, country, ip, r() < 0.7 ? 'wifi' : 'cellular', app),
      t,
      label,
      currency: country.currency,
    };
    relate(label, 'device', device.id);
    relate(label, 'ip', fileIpHash(ip));
    relate(label, 'session', s.sessionId);
    return s;
  }
  const victims = (app: AppSpec, r: Rand, minSessions: number): User | null => {
    const list = usersByApp.get(app.appId)!;
    for (let tries = 0; tries < 50; tries++) {
      const u = pick(r, list);
      if (u.sessions >= minSessions) return u;
    }
    return null;
  };

  function* bruteForce(r: Rand, app: AppSpec, t: number): Actor {
    const target = victims(app, r, 0)!;
    const ip = r() < 0.6 ? proxyIp(r) : carrierIp(r, attackerCountry(r));
    const label = openLabel('brute_force', 'ip', fileIpHash(ip), app.appId, { ip, target: target.id });
    relate(label, 'user', target.id);
    const s = attackerSession(r, app, label, t, { ip });
    const attempts = intBetween(r, 10, 50);
    const median = 1500 + r() * 6000;
    yield ev(s, 'appStart', { coldStart: true });
    s.t += 800 + r() * 1500;
    yield ev(s, 'screenView', { screenName: app.entry });
    s.t += think(r);
    yield ev(s, 'screenView', { screenName: 'Login', previousScreen: app.entry });
    for (let i = 0; i < attempts; i++) {
      s.t += Math.max(300, logNormal(r, median, 0.5));
      yield ev(s, 'userLogin', { userId: target.id, method: 'password', success: false });
    }
    if (r() < 0.15) {
      s.t += logNormal(r, median, 0.5);
      yield ev(s, 'userLogin', { userId: target.id, method: 'password', success: true });
      s.userId = target.id;
      yield ev(s, 'screenView', { screenName: app.entry });
      yield* browse(s, app.entry, intBetween(r, 2, 8), { items: 0, value: 0, card: target.card });
    }
    onLabel(finish(label));
  }

  function* credentialStuffing(r: Rand, app: AppSpec, t: number): Actor {
    const ip = proxyIp(r);
    const label = openLabel('credential_stuffing', 'ip', fileIpHash(ip), app.appId, { ip });
    const accounts = intBetween(r, 12, 60);
    const rotate = r() < 0.5;
    const median = 1000 + r() * 5000;
    let s = attackerSession(r, app, label, t, { ip });
    yield ev(s, 'appStart', { coldStart: true });
    s.t += 500 + r() * 1000;
    yield ev(s, 'screenView', { screenName: 'Login' });
    let sinceRotate = 0;
    for (let i = 0; i < accounts; i++) {
      if (rotate && sinceRotate >= intBetween(r, 2, 6)) {
        // Rotating device ids (a fresh install per few attempts): only the IP ties the attempts together.
        s = attackerSession(r, app, label, s.t + think(r, 2000), { ip });
        sinceRotate = 0;
        yield ev(s, 'appStart', { coldStart: true });
        s.t += 400 + r() * 800;
        yield ev(s, 'screenView', { screenName: 'Login' });
      }
      const existing = r() < 0.4 ? victims(app, r, 0) : null;
      const account = existing ? existing.id : newUserId();
      if (existing) relate(label, 'user', account);
      const tries = r() < 0.8 ? 1 : 2;
      for (let k = 0; k < tries; k++) {
        s.t += Math.max(200, logNormal(r, median, 0.6));
        const ok = existing !== null && k === tries - 1 && r() < 0.05;
        yield ev(s, 'userLogin', { userId: account, method: 'password', success: ok });
        if (ok) {
          s.userId = account;
          yield ev(s, 'screenView', { screenName: app.entry });
          s.t += think(r, 2000);
          s.userId = null;
          yield ev(s, 'screenView', { screenName: 'Login' });
        }
      }
      sinceRotate++;
    }
    onLabel(finish(label));
  }

  function* accountTakeover(r: Rand, app: AppSpec, t: number): Actor {
    const victim = victims(app, r, 3);
    if (!victim) return;
    const label = openLabel('account_takeover', 'user', victim.id, app.appId, { victim: victim.id, home: victim.home.code });
    const country = attackerCountry(r, victim.travel?.country ?? victim.home);
    const s = attackerSession(r, app, label, t, { country });
    label.details.country = country.code;
    yield ev(s, 'appStart', { coldStart: true });
    s.t += 600 + r() * 1500;
    yield* login(s, victim.id, r() < 0.3 ? intBetween(r, 1, 2) : 0, true);
    yield ev(s, 'screenView', { screenName: app.entry });
    const cart = { items: 0, value: 0, card: victim.card };
    // Looks around like a user would, then changes what matters and buys.
    yield* browse(s, app.entry, intBetween(r, 1, 6), cart);
    const profile = app.appId === 'shop' ? 'Profile' : 'Account';
    const payments = app.appId === 'shop' ? 'PaymentMethods' : 'Wallet';
    s.t += think(r);
    yield ev(s, 'screenView', { screenName: profile });
    const changes = r() < 0.5 ? ['profileUpdate', 'paymentMethodAdded'] : [pick(r, ['profileUpdate', 'paymentMethodAdded'])];
    for (const c of changes) {
      s.t += think(r);
      if (c === 'profileUpdate') {
        yield ev(s, 'buttonTap', { buttonId: 'edit', screenName: profile });
        yield ev(s, 'screenView', { screenName: 'EditProfile', previousScreen: profile });
        s.t += think(r, 9000);
        yield ev(s, 'buttonTap', { buttonId: 'save', screenName: 'EditProfile' });
        yield ev(s, 'profileUpdate', { properties: { fields: pick(r, [['email'], ['email', 'phone'], ['address']]) } });
      } else {
        yield ev(s, 'buttonTap', { buttonId: 'payment_methods', screenName: profile });
        yield ev(s, 'screenView', { screenName: payments, previousScreen: profile });
        s.t += think(r, 9000);
        yield ev(s, 'buttonTap', { buttonId: 'add_card', screenName: payments });
        cart.card = `card-${hex(r() * 0xffffffff, 8)}`;
        yield ev(s, 'paymentMethodAdded', { properties: { cardId: cart.card, brand: 'visa' } });
      }
      s.t += 500;
      yield ev(s, 'screenView', { screenName: profile });
    }
    yield* buyOnce(s, cart, 3 + r() * 4);
    s.t += think(r);
    yield ev(s, 'appBackground');
    relate(label, 'session', s.sessionId);
    onLabel(finish(label));
  }

  /** A full funnel purchase: product, add to cart, cart, checkout, payment, purchase (`priceScale` × a normal price). */
  function* buyOnce(s: SessionCtx, cart: { items: number; value: number; card: string }, priceScale: number): Generator<Labelled, void> {
    const r = s.r;
    const shop = s.app.appId === 'shop';
    const path = shop ? ['ProductDetail', 'Cart', 'Checkout', 'Payment'] : ['MenuItem', 'Basket', 'Checkout'];
    const product = productOf(r, s.app);
    const price = Math.round(priceOf(r, s.app) * priceScale * 100) / 100;
    s.t += think(r);
    yield ev(s, 'screenView', { screenName: path[0] });
    yield ev(s, 'productView', { productId: product, price, currency: s.currency });
    s.t += think(r);
    yield ev(s, 'buttonTap', { buttonId: shop ? 'add_to_cart' : 'add_and_view', screenName: path[0] });
    cart.items += 1;
    cart.value += price;
    yield ev(s, 'addToCart', { productId: product, quantity: 1, price, currency: s.currency });
    for (let i = 1; i < path.length; i++) {
      s.t += think(r);
      yield ev(s, 'buttonTap', { buttonId: i === 1 ? (shop ? 'add_to_cart' : 'add_and_view') : i === 2 ? 'checkout' : 'continue', screenName: path[i - 1] });
      yield ev(s, 'screenView', { screenName: path[i], previousScreen: path[i - 1] });
    }
    s.t += think(r, 7000);
    const payScreen = path[path.length - 1]!;
    yield ev(s, 'buttonTap', { buttonId: shop ? 'pay' : 'place_order', screenName: payScreen });
    yield ev(s, 'purchaseComplete', {
      orderId: `ord-${hex(r() * 0xffffffff, 8)}`,
      totalAmount: Math.round(cart.value * 100) / 100,
      currency: s.currency,
      itemCount: cart.items,
      properties: { cardId: cart.card },
    });
    cart.items = 0;
    cart.value = 0;
    s.t += 500;
    yield ev(s, 'screenView', { screenName: s.app.afterPurchase, previousScreen: payScreen });
  }

  function* cardTesting(r: Rand, app: AppSpec, t: number): Actor {
    const existing = r() < 0.3 ? victims(app, r, 1) : null;
    const account = existing ? existing.id : newUserId();
    const s0 = attackerSession(r, app, openLabel('card_testing', 'device', '', app.appId, {}), t);
    const label = s0.label!;
    label.entityId = s0.device.id;
    label.related = label.related.filter((x) => x.entityType !== 'device');
    relate(label, 'user', account);
    const s = s0;
    yield ev(s, 'appStart', { coldStart: true });
    if (!existing) {
      s.t += think(r, 20_000);
      yield ev(s, 'signUp', { userId: account, properties: { method: 'email' } });
    }
    yield* login(s, account, 0, true);
    yield ev(s, 'screenView', { screenName: app.entry });
    const cart = { items: 0, value: 0, card: '' };
    yield* browse(s, app.entry, intBetween(r, 1, 4), cart);
    const shop = app.appId === 'shop';
    const pay = shop ? 'Payment' : 'Checkout';
    const attempts = intBetween(r, 6, 30);
    const median = 4000 + r() * 25_000;
    for (let i = 0; i < attempts; i++) {
      s.t += Math.max(1500, logNormal(r, median, 0.6));
      yield ev(s, 'screenView', { screenName: pay });
      s.t += think(r, 3000);
      const card = `card-${hex(r() * 0xffffffff, 8)}`;
      yield ev(s, 'buttonTap', { buttonId: shop ? 'pay' : 'place_order', screenName: pay });
      const amount = Math.round((0.5 + r() * 2.5) * 100) / 100;
      if (r() < 0.7) {
        yield ev(s, 'paymentDeclined', { properties: { cardId: card, amount, reason: pick(r, ['do_not_honor', 'invalid_card', 'insufficient_funds', 'stolen_card']) } });
      } else {
        yield ev(s, 'purchaseComplete', { orderId: `ord-${hex(r() * 0xffffffff, 8)}`, totalAmount: amount, currency: s.currency, itemCount: 1, properties: { cardId: card } });
      }
    }
    s.t += think(r);
    yield ev(s, 'appBackground');
    onLabel(finish(label));
  }

  function* paymentFraud(r: Rand, app: AppSpec, t: number): Actor {
    const account = newUserId();
    const label = openLabel('payment_fraud', 'user', account, app.appId, {});
    const s = attackerSession(r, app, label, t);
    yield ev(s, 'appStart', { coldStart: true });
    s.t += think(r, 30_000);
    yield ev(s, 'signUp', { userId: account, properties: { method: 'email' } });
    yield* login(s, account, 0, true);
    yield ev(s, 'screenView', { screenName: app.entry });
    const cart = { items: 0, value: 0, card: `card-${hex(r() * 0xffffffff, 8)}` };
    const purchases = intBetween(r, 3, 6);
    const newCards = r() < 0.6;
    for (let i = 0; i < purchases; i++) {
      yield* browse(s, app.entry, intBetween(r, 1, 5), cart);
      if (newCards && i > 0) cart.card = `card-${hex(r() * 0xffffffff, 8)}`;
      // Expensive goods, several orders in a row, on stolen cards.
      yield* buyOnce(s, cart, 8 + r() * 20);
      s.t += think(r, 40_000);
      yield ev(s, 'screenView', { screenName: app.entry });
    }
    yield ev(s, 'appBackground');
    onLabel(finish(label));
  }

  function* longSession(r: Rand, app: AppSpec, t: number): Actor {
    const u = victims(app, r, 0)!;
    const country = u.home;
    const sessionId = newSessionId();
    const label = openLabel('long_session', 'session', sessionId, app.appId, { user: u.id });
    const s = attackerSession(r, app, label, t, { device: u.device, country, ip: u.homeIp, userId: u.id });
    s.sessionId = sessionId;
    label.related = label.related.filter((x) => x.entityType !== 'session');
    relate(label, 'user', u.id);
    const hours = 2.5 + r() * 3.5;
    const stop = t + hours * HOUR;
    yield ev(s, 'appStart', { coldStart: true });
    s.t += 1000;
    yield ev(s, 'screenView', { screenName: app.entry });
    let screen = app.entry;
    const cart = { items: 0, value: 0, card: u.card };
    const median = 8000 + r() * 40_000;
    while (s.t < stop) screen = yield* browse(s, screen, 10, cart, { thinkMedian: median, lifecycle: false });
    yield ev(s, 'appBackground');
    onLabel(finish(label));
  }

  function* bot(r: Rand, app: AppSpec, t: number): Actor {
    const s = attackerSession(r, app, openLabel('bot', 'device', '', app.appId, {}), t);
    const label = s.label!;
    label.entityId = s.device.id;
    label.related = label.related.filter((x) => x.entityType !== 'device');
    const period = 700 + r() * 7000;
    const jitter = 0.02 + r() * 0.18;
    label.details = { periodMs: Math.round(period), jitter: Math.round(jitter * 100) / 100 };
    const gap = () => period * (1 - jitter + 2 * jitter * r());
    const sessions = intBetween(r, 1, 3);
    for (let k = 0; k < sessions; k++) {
      if (k > 0) {
        s.t += MIN + r() * 20 * MIN;
        s.sessionId = newSessionId();
        relate(label, 'session', s.sessionId);
      }
      // A scripted client: valid screens and taps, metronome timing, and no lifecycle events at all.
      yield ev(s, 'screenView', { screenName: app.entry });
      yield* browse(s, app.entry, intBetween(r, 20, 120), { items: 0, value: 0, card: '' }, { idleTaps: false, lifecycle: false, fixedGap: gap });
    }
    onLabel(finish(label));
  }

  function* modifiedClient(r: Rand, app: AppSpec, t: number, forced?: readonly ClientTrait[]): Actor {
    const v = versionAt(app, r, t);
    const u = r() < 0.5 ? victims(app, r, 0) : null;
    const traits = new Set<string>(forced);
    if (!forced?.length) while (traits.size < 2 || (traits.size < 4 && r() < 0.3)) traits.add(pick(r, CLIENT_TRAITS));
    const model = pickWeighted(r, DEVICE_MODELS, (d) => d.weight);
    const device = makeDevice(r, app, v, model);
    if (traits.has('unknown_build')) {
      device.build = model.platform === 'ios' ? `${Number(v.builds.ios) - intBetween(r, 1, 9)}` : `${v.builds.android}${pick(r, ['-mod', '1', '-lite', '99'])}`;
      device.userAgent = appUserAgent(app, v.version, device.build, model, device.osVersion);
    }
    const country = u?.home ?? attackerCountry(r);
    const s = attackerSession(r, app, openLabel('modified_client', 'device', device.id, app.appId, { traits: [...traits], build: device.build }), t, {
      device,
      country,
      ip: u ? u.homeIp : undefined,
    });
    const label = s.label!;
    label.related = label.related.filter((x) => x.entityType !== 'device');
    const account = u?.id ?? newUserId();
    relate(label, 'user', account);
    const screens = Object.keys(v.graph);
    yield ev(s, 'appStart', { coldStart: true });
    yield* login(s, account, 0, true);
    yield ev(s, 'screenView', { screenName: app.entry });
    let screen = app.entry;
    const cart = { items: 0, value: 0, card: `card-${hex(r() * 0xffffffff, 8)}` };
    const rounds = intBetween(r, 2, 5);
    for (let i = 0; i < rounds; i++) {
      screen = yield* browse(s, screen, intBetween(r, 2, 8), cart);
      if (traits.has('impossible_transitions')) {
        // Jumps the real app's navigation cannot make (deep links into screens with no edge from here).
        for (let k = intBetween(r, 1, 3); k > 0; k--) {
          const reachable = new Set(v.graph[screen]!.map((e) => e.to));
          const target = pick(r, screens.filter((x) => x !== screen && !reachable.has(x)));
          s.t += think(r);
          yield ev(s, 'screenView', { screenName: target, previousScreen: screen });
          screen = target;
        }
      }
      if (traits.has('inhuman_taps')) {
        const n = intBetween(r, 12, 40);
        const button = pick(r, app.idleButtons[screen] ?? ['refresh']);
        for (let k = 0; k < n; k++) {
          s.t += 25 + r() * 60;
          yield ev(s, 'buttonTap', { buttonId: button, screenName: screen });
        }
      }
      if (traits.has('skipped_screens') && i === 0) {
        // Straight from the entry screen to checkout, skipping product, cart and checkout review.
        s.t += think(r);
        yield ev(s, 'screenView', { screenName: app.entry, previousScreen: screen });
        s.t += think(r);
        const pay = app.appId === 'shop' ? 'Payment' : 'Checkout';
        yield ev(s, 'screenView', { screenName: pay, previousScreen: app.entry });
        screen = pay;
      }
      if (traits.has('purchase_without_cart') && i === rounds - 1) {
        const pay = app.appId === 'shop' ? 'Payment' : 'Checkout';
        if (screen !== pay) {
          s.t += think(r);
          yield ev(s, 'screenView', { screenName: pay, previousScreen: screen });
        }
        s.t += think(r);
        yield ev(s, 'purchaseComplete', {
          orderId: `ord-${hex(r() * 0xffffffff, 8)}`,
          totalAmount: Math.round(priceOf(r, app) * 100) / 100,
          currency: s.currency,
          itemCount: 1,
          properties: { cardId: cart.card },
        });
        screen = app.afterPurchase;
        yield ev(s, 'screenView', { screenName: screen, previousScreen: pay });
      }
    }
    s.t += think(r);
    yield ev(s, 'appBackground');
    onLabel(finish(label));
  }

  const SCENARIO_ACTORS: Record<Scenario, (r: Rand, app: AppSpec, t: number) => Actor> = {
    brute_force: bruteForce,
    credential_stuffing: credentialStuffing,
    account_takeover: accountTakeover,
    card_testing: cardTesting,
    payment_fraud: paymentFraud,
    long_session: longSession,
    bot,
    modified_client: modifiedClient,
  };

  const openLabels = new Set<Label>();
  function finish(l: Label): Label {
    openLabels.delete(l);
    return l;
  }

  // ---- attack spawner ------------------------------------------------------------------------------------------------
  const meanSessionsPerMs = users.reduce((a, u) => a + u.sessionsPerDay, 0) / DAY;
  function* spawner(): Actor {
    const r = rng(mixSeed(o.seed, 7));
    if (o.anomalyRate <= 0 || scenarios.length === 0 || meanSessionsPerMs <= 0) return;
    let t = Math.max(o.start, attacksFrom);
    let k = Math.floor(r() * scenarios.length);
    for (;;) {
      t += expo(r, 1 / (meanSessionsPerMs * o.anomalyRate));
      if (t >= end || t >= attacksUntil) return;
      yield { wakeAt: t };
      // Round-robin from a random start keeps scenarios balanced in small runs.
      const scenario = scenarios[k++ % scenarios.length]!;
      const app = pick(r, apps);
      spawn(SCENARIO_ACTORS[scenario](rng(mixSeed(o.seed, 1_000_000 + labelSeq * 7 + k)), app, t), t);
    }
  }

  // ---- scheduler: a binary heap of actors keyed by their next step's time ----------------------------------------------
  interface Slot { ts: number; seq: number; actor: Actor; step: Step }
  const heap: Slot[] = [];
  let slotSeq = 0;
  const less = (a: Slot, b: Slot) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq);
  function push(s: Slot) {
    heap.push(s);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  }
  function pop(): Slot | undefined {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const rr = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (rr < heap.length && less(heap[rr]!, heap[m]!)) m = rr;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
  const stepTs = (s: Step) => ('wakeAt' in s ? (s as Wake).wakeAt : (s as Labelled).timestamp);
  function advance(actor: Actor) {
    const n = actor.next();
    if (n.done) return;
    push({ ts: stepTs(n.value), seq: slotSeq++, actor, step: n.value });
  }
  function spawn(actor: Actor, _t: number) {
    advance(actor);
  }

  // Scripted attacks: each its own actor that waits for its time, with a stream apart from the random spawner's.
  function* injected(inj: Injection, k: number): Actor {
    yield { wakeAt: inj.at };
    const app = apps.find((a) => a.appId === inj.appId) ?? apps[k % apps.length]!;
    const r = rng(mixSeed(o.seed, 2_000_000 + k));
    const attack = inj.scenario === 'modified_client' ? modifiedClient(r, app, inj.at, inj.traits) : SCENARIO_ACTORS[inj.scenario](r, app, inj.at);
    for (let n = attack.next(); !n.done; n = attack.next()) yield n.value;
  }

  for (const u of users) advance(userActor(u));
  advance(spawner());
  (o.injections ?? []).forEach((inj, k) => {
    if (inj.at < end) advance(injected(inj, k));
  });

  let lastTs = o.start;
  for (;;) {
    const slot = pop();
    if (!slot || slot.ts >= end) break;
    const step = slot.step;
    if (!('wakeAt' in step)) {
      const e = step as Labelled;
      // Actors keep their own clocks; the merged stream never goes back in time.
      if (e.timestamp < lastTs) e.timestamp = lastTs;
      lastTs = e.timestamp;
      const label = e[LABEL];
      if (label) {
        if (label.eventIds.length === 0) openLabels.add(label);
        label.eventIds.push(e.eventId);
        if (e.timestamp < label.startTs) label.startTs = e.timestamp;
        label.endTs = e.timestamp;
        relate(label, 'session', e.sessionId as string);
      }
      yield e;
    }
    advance(slot.actor);
  }
  // Instances still running at the end of the period are labelled with what they did so far.
  for (const l of openLabels) onLabel(l);
}

/** Collects a finite simulation into memory: events in time order and the labels of the attacks in it. */
export function generateAll(o: GenerateOptions): { events: GenEvent[]; labels: Label[] } {
  if (!(o.durationMs > 0)) throw new Error('generateAll needs a finite duration');
  const labels: Label[] = [];
  const events = [...simulate(o, (l) => l.eventIds.length > 0 && labels.push(l))];
  labels.sort((a, b) => a.startTs - b.startTs);
  return { events, labels };
}
