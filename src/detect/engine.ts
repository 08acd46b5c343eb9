// The detection engine: one synchronous call per event, `process(event) → anomalies`. Per app it keeps transition
// models (per app version, and per device), build registries, session-length and per-type rate baselines; per entity
// it keeps sessions (timing, lifecycle, last symbols), devices, users (known devices / IPs / countries / user agents,
// hour-of-day profile) and IPs (login failure ratio). Scores come first, then model anomalies, then rules, and only
// then does the event teach the models, so an event is never judged against itself.
//
// Pure: no I/O, event time only (never the wall clock), bounded memory (idle entities are evicted), and the whole
// state (models, windows, cool-downs, recently raised ids) snapshots and restores, so a restart neither forgets nor
// raises again what it already raised.
import type { StoredEvent } from '../event/stored-event.js';
import { anomalyId, fmtDuration, fmtP, type Anomaly, type EntityType, type Severity } from './anomaly.js';
import {
  START,
  SYMBOLS,
  learnEntityTransition,
  learnTransition,
  newMarkovResult,
  newTransitions,
  scoreTransition,
  type EntityTransitions,
  type MarkovParams,
  type Transitions,
} from './markov.js';
import { evaluateRule, evictRuleState, newRuleState, type CompiledRule, type EventView, type RuleState } from './rules-engine.js';
import { newScores, type ModelScores } from './scores.js';
import { decodeState, encodeState, encodeStateAsync } from './serialize.js';

/** Every knob of the models, with its default. */
export interface DetectorConfig {
  markov: MarkovParams;
  /** A transition less probable than this is an anomaly. */
  markovThreshold: number;
  markovCooldownMs: number;
  /** A user is "known" (novelty is judged) after this many events in at least `noveltyMinSessions` sessions. */
  noveltyMinEvents: number;
  noveltyMinSessions: number;
  /** A user's country changing within this time counts as impossible travel. */
  geoVelocityMs: number;
  /** A session with no event for this long is over (its length feeds the baseline). */
  sessionIdleMs: number;
  /** Sessions longer than max(this, factor × p99.9 of learned session lengths) are anomalies. */
  longSessionMinMs: number;
  longSessionFactor: number;
  /** Scripted-client test: at least this many gaps, coefficient of variation below botMaxCv, no lifecycle events. */
  botMinGaps: number;
  botMaxCv: number;
  botCooldownMs: number;
  /** Per-type rate: this many events of one type in a minute and this many deviations above the app's EMA. */
  rateMinCount: number;
  rateZ: number;
  /** EMA weight of one device-minute in the app's per-type rate baseline. */
  rateAlpha: number;
  rateCooldownMs: number;
  /** A version is mature after this many devices; a build seen on fewer than buildUnknownBelow of them is unknown. */
  buildMatureDevices: number;
  buildUnknownBelow: number;
  buildCooldownMs: number;
  /** Idle entities are forgotten after these (event time). */
  deviceIdleMs: number;
  userIdleMs: number;
  ipIdleMs: number;
  /** Hard caps per app and entity type (oldest forgotten first). */
  maxEntities: number;
  /** Eviction sweep every this many events. */
  sweepEvery: number;
  /** Raised anomaly ids remembered (no re-raise after a restore and a replay). */
  rememberRaised: number;
}

export const DEFAULT_CONFIG: DetectorConfig = {
  markov: { appPrior: 1, versionPrior: 20, secondPrior: 10, entityPrior: 5, versionMature: 3000, minContext: 200, youngSymbol: 300 },
  markovThreshold: 2e-4,
  markovCooldownMs: 60 * 60_000,
  noveltyMinEvents: 20,
  noveltyMinSessions: 2,
  geoVelocityMs: 2 * 3_600_000,
  sessionIdleMs: 30 * 60_000,
  longSessionMinMs: 75 * 60_000,
  longSessionFactor: 1.5,
  botMinGaps: 15,
  botMaxCv: 0.3,
  botCooldownMs: 6 * 3_600_000,
  rateMinCount: 30,
  rateZ: 8,
  rateAlpha: 0.002,
  rateCooldownMs: 30 * 60_000,
  buildMatureDevices: 30,
  buildUnknownBelow: 3,
  buildCooldownMs: 24 * 3_600_000,
  deviceIdleMs: 30 * 86_400_000,
  userIdleMs: 60 * 86_400_000,
  ipIdleMs: 86_400_000,
  maxEntities: 500_000,
  sweepEvery: 50_000,
  rememberRaised: 20_000,
};

// ---- state shapes (plain data: snapshotted as is) -----------------------------------------------------------------

interface SessionState {
  start: number;
  last: number;
  n: number;
  gapN: number;
  gapMean: number;
  gapM2: number;
  lifecycle: number;
  p1: number;
  p2: number;
  /** 1: long-session raised; 2: bot raised. */
  flags: number;
  web: boolean;
}

interface DeviceState {
  first: number;
  last: number;
  users: Map<string, number>;
  version: string | null;
  build: string | null;
  minute: number;
  counts: Int32Array;
  tr: EntityTransitions;
}

interface UserState {
  first: number;
  last: number;
  events: number;
  sessions: number;
  lastSession: string | null;
  devices: Map<string, number>;
  ips: Map<string, number>;
  countries: Map<string, number>;
  uas: Map<string, number>;
  hours: Float64Array;
  hourTotal: number;
  lastCountry: string | null;
  lastCountryTs: number;
}

interface IpState {
  last: number;
  attempts: number;
  fails: number;
}

interface BuildStats {
  devices: number;
  builds: Map<string, number>;
}

interface AppState {
  symIds: Map<string, number>;
  symSub: Map<string, Map<string, number>>;
  symNames: string[];
  app: Transitions;
  versions: Map<string, Transitions>;
  builds: Map<string, BuildStats>;
  /** Completed session lengths: quarter-octave buckets of seconds. */
  sessionHist: Float64Array;
  sessionsDone: number;
  longThresholdMs: number;
  typeIds: Map<string, number>;
  rateMean: Float64Array;
  rateVar: Float64Array;
  rateN: number;
  sessions: Map<string, SessionState>;
  devices: Map<string, DeviceState>;
  users: Map<string, UserState>;
  ips: Map<string, IpState>;
}

interface EngineState {
  v: 1;
  now: number;
  seen: number;
  apps: Map<string, AppState>;
  rules: RuleState;
  cooldowns: Map<string, number>;
  raised: string[];
}

const EMPTY: Anomaly[] = [];
const RATE_SLOTS = 32;
const HIST_BUCKETS = 96;
const LIFECYCLE = new Set(['appStart', 'appForeground', 'appBackground']);
/** Events that are not navigation (they interleave anywhere) stay out of the transition models. */
const NOT_NAVIGATION = new Set(['appStart', 'appForeground', 'appBackground', 'networkChange', 'screenExit']);
const SUB_FIELD: Record<string, 'screen_name' | 'button_id' | 'success'> = { screenView: 'screen_name', buttonTap: 'button_id', userLogin: 'success' };
const NOVELTY_WEIGHTS = { device: 0.35, country: 0.3, ua: 0.2, ip: 0.15 };

const histBucket = (ms: number) => Math.min(HIST_BUCKETS - 1, Math.floor(Math.log2(ms / 1000 + 1) * 4));
const bucketUpperMs = (b: number) => (2 ** ((b + 1) / 4) - 1) * 1000;

function newApp(): AppState {
  return {
    symIds: new Map([['$start', START]]),
    symSub: new Map(),
    symNames: ['(session start)'],
    app: newTransitions(),
    versions: new Map(),
    builds: new Map(),
    sessionHist: new Float64Array(HIST_BUCKETS),
    sessionsDone: 0,
    longThresholdMs: 0,
    typeIds: new Map(),
    rateMean: new Float64Array(RATE_SLOTS),
    rateVar: new Float64Array(RATE_SLOTS),
    rateN: 0,
    sessions: new Map(),
    devices: new Map(),
    users: new Map(),
    ips: new Map(),
  };
}

const newState = (): EngineState => ({ v: 1, now: 0, seen: 0, apps: new Map(), rules: newRuleState(), cooldowns: new Map(), raised: [] });

/** Reads `"key":"value"` from a props JSON string without parsing it (the country rides in props on every event). */
export function propString(props: string, key: string): string | null {
  const needle = `"${key}":"`;
  const i = props.indexOf(needle);
  if (i < 0) return null;
  const from = i + needle.length;
  const end = props.indexOf('"', from);
  return end < 0 ? null : props.slice(from, end);
}

/** Remembers up to `cap` keys, forgetting the least recently seen (insertion order is recency: re-set moves to the end). */
function touch(m: Map<string, number>, k: string, ts: number, cap: number): void {
  if (m.has(k)) m.delete(k);
  else if (m.size >= cap) m.delete(m.keys().next().value!);
  m.set(k, ts);
}

export interface EngineOptions {
  rules?: readonly CompiledRule[];
  config?: Partial<DetectorConfig>;
}

export interface EngineStats {
  events: number;
  now: number;
  apps: number;
  sessions: number;
  devices: number;
  users: number;
  ips: number;
  ruleStates: number;
  cooldowns: number;
}

export class DetectionEngine {
  readonly config: DetectorConfig;
  private rules: readonly CompiledRule[];
  private s: EngineState = newState();
  private raisedSet = new Set<string>();
  private readonly scores: ModelScores = newScores();
  private readonly mk = newMarkovResult();
  private out: Anomaly[] = EMPTY;
  private learnOnly = false;
  private noveltyFlags = 0;
  private props: Record<string, unknown> | null = null;
  private readonly view: EventView;

  constructor(o: EngineOptions = {}) {
    this.config = { ...DEFAULT_CONFIG, ...o.config, markov: { ...DEFAULT_CONFIG.markov, ...o.config?.markov } };
    this.rules = o.rules ?? [];
    const self = this;
    this.view = {
      ev: null as unknown as StoredEvent,
      scores: this.scores,
      country: null,
      props() {
        if (self.props === null) {
          try {
            self.props = JSON.parse(this.ev.props) as Record<string, unknown>;
          } catch {
            self.props = {};
          }
        }
        return self.props!;
      },
    };
  }

  /** Replaces the rules (hot reload); windows and marks of rules that keep their id carry on. */
  setRules(rules: readonly CompiledRule[]): void {
    this.rules = rules;
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  /** Scores one event, raises what it finds, learns from it. Events should arrive in time order per entity. */
  process(ev: StoredEvent): Anomaly[] {
    this.learnOnly = false;
    this.out = EMPTY;
    this.step(ev);
    return this.out;
  }

  /** Warms the models and state from a known-good event (never raises). */
  learn(ev: StoredEvent): void {
    this.learnOnly = true;
    this.out = EMPTY;
    this.step(ev);
    this.learnOnly = false;
  }

  private step(ev: StoredEvent): void {
    const s = this.s;
    const cfg = this.config;
    if (ev.ts > s.now) s.now = ev.ts;
    s.seen++;
    let app = s.apps.get(ev.app_id);
    if (!app) s.apps.set(ev.app_id, (app = newApp()));
    const sc = this.scores;
    const view = this.view;
    view.ev = ev;
    this.props = null;
    const country = propString(ev.props, 'context.country');
    view.country = country;

    // ---- entities --------------------------------------------------------------------------------------------
    const sessionKey = ev.session_id ?? ev.device_id;
    let session = app.sessions.get(sessionKey);
    if (session && ev.ts - session.last > cfg.sessionIdleMs) {
      // Idle past the limit: that session is over (its length feeds the baseline) and this event starts a new one.
      this.closeSession(app, session);
      session = undefined;
    }
    if (!session) {
      session = { start: ev.ts, last: ev.ts, n: 0, gapN: 0, gapMean: 0, gapM2: 0, lifecycle: 0, p1: START, p2: -1, flags: 0, web: ev.platform === 'web' };
      app.sessions.set(sessionKey, session);
    }
    let device = app.devices.get(ev.device_id);
    if (!device) {
      device = { first: ev.ts, last: ev.ts, users: new Map(), version: null, build: null, minute: -1, counts: new Int32Array(RATE_SLOTS), tr: { c1: new Map(), ctx1: new Map() } };
      app.devices.set(ev.device_id, device);
    }
    const failedLogin = ev.type === 'userLogin' && ev.success === false;
    let user: UserState | undefined;
    if (ev.user_id !== null) {
      user = app.users.get(ev.user_id);
      // A failed login names an account; it does not make that account's history (attackers must not shape it).
      if (!user && !failedLogin) {
        user = { first: ev.ts, last: ev.ts, events: 0, sessions: 0, lastSession: null, devices: new Map(), ips: new Map(), countries: new Map(), uas: new Map(), hours: new Float64Array(24), hourTotal: 0, lastCountry: null, lastCountryTs: 0 };
        app.users.set(ev.user_id, user);
      }
    }
    let ip: IpState | undefined;
    if (ev.ip_hash !== null) {
      ip = app.ips.get(ev.ip_hash);
      if (!ip) app.ips.set(ev.ip_hash, (ip = { last: ev.ts, attempts: 0, fails: 0 }));
    }

    // ---- scores ------------------------------------------------------------------------------------------------
    const symbol = this.symbolOf(app, ev);
    const versionKey = ev.app_version ?? '(none)';
    let version = app.versions.get(versionKey);
    if (!version) app.versions.set(versionKey, (version = newTransitions()));
    sc.markov = 0;
    sc.markovP = 1;
    if (symbol >= 0) {
      scoreTransition(app.app, version, device.tr, session.p2, session.p1, symbol, app.symNames.length, cfg.markov, this.mk);
      sc.markovP = this.mk.p;
      if (this.mk.judged && this.mk.p < cfg.markovThreshold) sc.markov = Math.min(1, 0.5 + Math.log10(cfg.markovThreshold / this.mk.p) / 6);
    }

    // Session timing: gaps between events (Welford), lifecycle events, length so far.
    if (session.n > 0) {
      const gap = ev.ts - session.last;
      session.gapN++;
      const d = gap - session.gapMean;
      session.gapMean += d / session.gapN;
      session.gapM2 += d * (gap - session.gapMean);
    }
    if (LIFECYCLE.has(ev.type)) session.lifecycle++;
    session.n++;
    session.last = ev.ts;
    sc.sessionMinutes = (ev.ts - session.start) / 60_000;
    sc.bot = 0;
    if (session.gapN >= cfg.botMinGaps && session.gapMean > 0) {
      const cv = Math.sqrt(session.gapM2 / (session.gapN - 1)) / session.gapMean;
      // Without lifecycle events (a mobile session always has them) a regular metronome is a script; with them, only
      // an extremely regular one is.
      if (session.lifecycle === 0 && !session.web) sc.bot = Math.max(0, Math.min(1, (2 * cfg.botMaxCv - cv) / cfg.botMaxCv));
      else if (session.gapN >= 3 * cfg.botMinGaps && cv < cfg.botMaxCv / 3) sc.bot = 1;
    }

    // Novelty, hour-of-day, travel speed: only for a user with history (never a user's first events).
    sc.novelty = 0;
    sc.hourRarity = 0;
    sc.geoVelocity = 0;
    this.noveltyFlags = 0;
    const hour = Math.floor((ev.ts % 86_400_000) / 3_600_000);
    const ua = ev.os !== null || ev.device_model !== null ? `${ev.os ?? ''}|${ev.device_model ?? ''}` : null;
    if (user && user.events >= cfg.noveltyMinEvents && user.sessions >= cfg.noveltyMinSessions) {
      let n = 0;
      if (!user.devices.has(ev.device_id)) (n += NOVELTY_WEIGHTS.device), (this.noveltyFlags |= 1);
      if (country !== null && user.countries.size > 0 && !user.countries.has(country)) (n += NOVELTY_WEIGHTS.country), (this.noveltyFlags |= 2);
      if (ua !== null && user.uas.size > 0 && !user.uas.has(ua)) (n += NOVELTY_WEIGHTS.ua), (this.noveltyFlags |= 4);
      if (ev.ip_hash !== null && user.ips.size > 0 && !user.ips.has(ev.ip_hash)) (n += NOVELTY_WEIGHTS.ip), (this.noveltyFlags |= 8);
      sc.novelty = n;
      if (user.hourTotal >= 100) {
        const p = (user.hours[hour]! + 0.5) / (user.hourTotal + 12);
        sc.hourRarity = Math.max(0, Math.min(1, 1 - p * 96));
      }
      if (country !== null && user.lastCountry !== null && country !== user.lastCountry && ev.ts - user.lastCountryTs < cfg.geoVelocityMs) sc.geoVelocity = 1;
    }

    // Per-type rate of this device in the current minute against the app's EMA of device-minutes.
    let typeId = app.typeIds.get(ev.type);
    if (typeId === undefined) {
      typeId = Math.min(app.typeIds.size, RATE_SLOTS - 1);
      app.typeIds.set(ev.type, typeId);
    }
    const minute = Math.floor(ev.ts / 60_000);
    if (minute !== device.minute) {
      if (device.minute >= 0) this.closeMinute(app, device);
      device.minute = minute;
    }
    const count = ++device.counts[typeId]!;
    sc.rateZ = app.rateN >= 1000 ? (count - app.rateMean[typeId]!) / Math.sqrt(app.rateVar[typeId]! + 0.25) : 0;

    // Login failures per IP (decayed over ~10 minutes).
    sc.ipFailRatio = 0;
    sc.ipLoginRate = 0;
    if (ip) {
      if (ev.type === 'userLogin') {
        const decay = Math.exp(-(ev.ts - ip.last) / 600_000);
        ip.attempts = ip.attempts * decay + 1;
        ip.fails = ip.fails * decay + (failedLogin ? 1 : 0);
      }
      ip.last = ev.ts;
      if (ip.attempts >= 3) sc.ipFailRatio = ip.fails / ip.attempts;
      sc.ipLoginRate = ip.attempts / 10;
    }
    sc.deviceUsers = device.users.size;

    // ---- model anomalies ------------------------------------------------------------------------------------------
    if (!this.learnOnly) {
      if (sc.markov > 0) this.raiseMarkov(app, ev, session, versionKey, symbol);
      if (sc.bot >= 1 && (session.flags & 2) === 0) {
        session.flags |= 2;
        const cv = Math.sqrt(session.gapM2 / (session.gapN - 1)) / session.gapMean;
        this.raise('model:timing', 'bot', 'high', ev, 'device', ev.device_id, session.start, 0.6 + 0.4 * sc.bot * Math.min(1, (cfg.botMaxCv - cv) / cfg.botMaxCv + 0.5), cfg.botCooldownMs,
          `scripted timing in session ${sessionKey}: ${session.gapN} gaps averaging ${fmtDuration(session.gapMean)} with coefficient of variation ${cv.toFixed(2)} (human sessions vary, CV ≈ 1) and ${session.lifecycle} lifecycle events (an app session has appStart/appForeground)`,
          { cv, gaps: session.gapN, meanGapMs: Math.round(session.gapMean), lifecycleEvents: session.lifecycle });
      }
      const longMs = Math.max(cfg.longSessionMinMs, cfg.longSessionFactor * app.longThresholdMs);
      if ((session.flags & 1) === 0 && ev.ts - session.start > longMs && ev.session_id !== null) {
        session.flags |= 1;
        const len = ev.ts - session.start;
        this.raise('model:session-length', 'long_session', 'medium', ev, 'session', ev.session_id, session.start, Math.min(1, 0.5 + 0.25 * Math.log2(len / longMs)), Infinity,
          `session lasted ${fmtDuration(len)} with ${session.n} events; ${app.sessionsDone >= 200 ? `p99.9 of ${app.sessionsDone} sessions of ${ev.app_id} is ${fmtDuration(app.longThresholdMs)}` : 'too few sessions learned for a baseline'}, limit ${fmtDuration(longMs)}`,
          { lengthMs: len, limitMs: longMs, p999Ms: app.longThresholdMs, events: session.n });
      }
      if (count >= cfg.rateMinCount && sc.rateZ >= cfg.rateZ) {
        this.raise('model:rate', 'modified_client', 'medium', ev, 'device', ev.device_id, minute * 60_000, Math.min(1, 0.5 + sc.rateZ / 40), cfg.rateCooldownMs,
          `${count} ${ev.type} events in one minute from device ${ev.device_id}; the app's devices average ${app.rateMean[typeId]!.toFixed(1)} (sd ${Math.sqrt(app.rateVar[typeId]!).toFixed(1)}) per active minute, z=${sc.rateZ.toFixed(1)}`,
          { count, type: ev.type, emaMean: app.rateMean[typeId], emaSd: Math.sqrt(app.rateVar[typeId]!), z: sc.rateZ });
      }
    }
    // App builds per version and platform: a build the version's devices never use is a modified or fake client.
    if (ev.app_build !== null && ev.app_version !== null && (device.build !== ev.app_build || device.version !== ev.app_version)) {
      const key = `${ev.app_version}\u0001${ev.platform ?? ''}`;
      let b = app.builds.get(key);
      if (!b) app.builds.set(key, (b = { devices: 0, builds: new Map() }));
      const known = b.builds.get(ev.app_build) ?? 0;
      if (!this.learnOnly && b.devices >= cfg.buildMatureDevices && known < cfg.buildUnknownBelow) {
        const top = [...b.builds].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, n]) => `${k} (${n} devices)`).join(', ');
        this.raise('model:build', 'modified_client', 'high', ev, 'device', ev.device_id, ev.ts, known === 0 ? 0.9 : 0.7, cfg.buildCooldownMs,
          `build ${ev.app_build} of ${ev.app_id} v${ev.app_version} on ${ev.platform ?? 'unknown platform'} seen on ${known} device(s) before; the version's ${b.devices} devices run ${top}`,
          { build: ev.app_build, version: ev.app_version, platform: ev.platform, knownDevices: known, versionDevices: b.devices });
      }
      b.devices++;
      b.builds.set(ev.app_build, known + 1);
      device.version = ev.app_version;
      device.build = ev.app_build;
    }

    // ---- rules ----------------------------------------------------------------------------------------------------
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const hit = evaluateRule(rules[i]!, view, s.rules, this.suppressed);
      if (hit && !this.learnOnly) {
        const r = hit.rule;
        this.raise(r.source, r.category, r.severity, ev, r.entityType, hit.entityId, hit.windowStart, hit.score, r.cooldownMs, hit.explanation, hit.details, hit.eventIds);
      }
    }

    // ---- learn ----------------------------------------------------------------------------------------------------
    if (symbol >= 0) {
      learnTransition(app.app, session.p2, session.p1, symbol);
      learnTransition(version, session.p2, session.p1, symbol);
      learnEntityTransition(device.tr, session.p1, symbol);
      session.p2 = session.p1;
      session.p1 = symbol;
    }
    device.last = ev.ts;
    if (user && !failedLogin) {
      user.last = ev.ts;
      user.events++;
      if (user.lastSession !== sessionKey) {
        user.sessions++;
        user.lastSession = sessionKey;
      }
      touch(user.devices, ev.device_id, ev.ts, 12);
      if (country !== null) {
        touch(user.countries, country, ev.ts, 12);
        user.lastCountry = country;
        user.lastCountryTs = ev.ts;
      }
      if (ua !== null) touch(user.uas, ua, ev.ts, 12);
      if (ev.ip_hash !== null) touch(user.ips, ev.ip_hash, ev.ts, 32);
      user.hours[hour]! += 1;
      if (++user.hourTotal > 4000) {
        for (let h = 0; h < 24; h++) user.hours[h]! *= 0.5;
        user.hourTotal *= 0.5;
      }
      touch(device.users, ev.user_id!, ev.ts, 16);
    }
    if (s.seen % cfg.sweepEvery === 0) this.sweep();
  }

  /** Interns the event's navigation symbol (screen view per screen, tap per button, login per outcome, other kinds by name); -1 when it is not navigation. */
  private symbolOf(app: AppState, ev: StoredEvent): number {
    const type = ev.type;
    if (NOT_NAVIGATION.has(type)) return -1;
    const field = SUB_FIELD[type];
    if (field === undefined) {
      let id = app.symIds.get(type);
      if (id === undefined) id = this.intern(app, type, app.symIds, type);
      return id;
    }
    const v = ev[field];
    const sub = v === null ? '' : typeof v === 'string' ? v : v ? 'ok' : 'failed';
    let m = app.symSub.get(type);
    if (!m) app.symSub.set(type, (m = new Map()));
    let id = m.get(sub);
    if (id === undefined) id = this.intern(app, `${type}:${sub}`, m, sub);
    return id;
  }

  private intern(app: AppState, name: string, m: Map<string, number>, key: string): number {
    // Past the symbol budget, new symbols share one "other" id (a client inventing names cannot grow memory).
    if (app.symNames.length >= SYMBOLS - 1) {
      m.set(key, SYMBOLS - 1);
      return SYMBOLS - 1;
    }
    const id = app.symNames.length;
    app.symNames.push(name);
    m.set(key, id);
    return id;
  }

  private closeSession(app: AppState, ss: SessionState): void {
    if (ss.n < 2) return;
    app.sessionHist[histBucket(ss.last - ss.start)]! += 1;
    app.sessionsDone++;
  }

  private closeMinute(app: AppState, device: DeviceState): void {
    const a = this.config.rateAlpha;
    const slots = Math.min(app.typeIds.size, RATE_SLOTS);
    for (let t = 0; t < slots; t++) {
      const x = device.counts[t]!;
      const d = x - app.rateMean[t]!;
      app.rateMean[t]! += a * d;
      app.rateVar[t] = (1 - a) * (app.rateVar[t]! + a * d * d);
      device.counts[t] = 0;
    }
    app.rateN++;
  }

  private raiseMarkov(app: AppState, ev: StoredEvent, session: SessionState, versionKey: string, symbol: number): void {
    const mk = this.mk;
    const name = (id: number) => (id < 0 ? '-' : (app.symNames[id] ?? '?'));
    const from = name(session.p1);
    const ctx2 = session.p2 >= 0 ? `${name(session.p2)}→${from}` : null;
    this.raise('model:markov', 'modified_client', mk.p < this.config.markovThreshold / 100 ? 'high' : 'medium', ev, 'device', ev.device_id, ev.ts, this.scores.markov, this.config.markovCooldownMs,
      `transition ${from}→${name(symbol)} seen, p=${fmtP(mk.p)} under ${ev.app_id} v${versionKey}'s model${ctx2 ? ` after ${ctx2}` : ''} (${mk.ctxVersion} transitions from ${from} learned for this version); app-wide p=${fmtP(mk.pApp)} over ${mk.ctxApp}; this device: ${mk.countEntity} of ${mk.ctxEntity} (p=${fmtP(mk.pEntity)}); expected p ≥ ${fmtP(this.config.markovThreshold)}`,
      { from, to: name(symbol), previous: ctx2, p: mk.p, pEntity: mk.pEntity, pVersion: mk.pVersion2, pVersion1: mk.pVersion1, pApp: mk.pApp, ctxApp: mk.ctxApp, ctxVersion: mk.ctxVersion, version: versionKey });
  }

  /** Cool-down check shared by rules and models (bound once: rules call it per firing). */
  private readonly suppressed = (r: CompiledRule, entityId: string): boolean => {
    const last = this.s.cooldowns.get(`${r.source}\u0001${this.view.ev.app_id}\u0001${r.entityType}\u0001${entityId}`);
    return last !== undefined && this.view.ev.ts - last < r.cooldownMs;
  };

  private raise(
    source: string,
    category: string,
    severity: Severity,
    ev: StoredEvent,
    entityType: EntityType,
    entityId: string,
    windowStart: number,
    score: number,
    cooldownMs: number,
    explanation: string,
    details: Record<string, unknown>,
    eventIds: string[] = [ev.event_id],
  ): void {
    const ck = `${source}\u0001${ev.app_id}\u0001${entityType}\u0001${entityId}`;
    const last = this.s.cooldowns.get(ck);
    if (last !== undefined && ev.ts - last < cooldownMs) return;
    const id = anomalyId(source, ev.app_id, entityType, entityId, windowStart);
    if (this.raisedSet.has(id)) return;
    this.s.cooldowns.set(ck, ev.ts);
    this.raisedSet.add(id);
    this.s.raised.push(id);
    if (this.s.raised.length > this.config.rememberRaised) {
      const drop = this.s.raised.splice(0, this.s.raised.length - this.config.rememberRaised);
      for (const d of drop) this.raisedSet.delete(d);
    }
    if (this.noveltyFlags && entityType === 'user') details.novelty = this.noveltyDetails();
    const a: Anomaly = {
      id,
      appId: ev.app_id,
      entityType,
      entityId,
      deviceId: ev.device_id,
      userId: ev.user_id,
      sessionId: ev.session_id,
      ipHash: ev.ip_hash,
      ts: ev.ts,
      score: Math.max(0, Math.min(1, score)),
      severity,
      source,
      category,
      explanation,
      eventIds,
      details,
    };
    if (this.out === EMPTY) this.out = [a];
    else this.out.push(a);
  }

  private noveltyDetails(): Record<string, unknown> {
    const f = this.noveltyFlags;
    return { score: this.scores.novelty, newDevice: !!(f & 1), newCountry: !!(f & 2), newUserAgent: !!(f & 4), newIp: !!(f & 8) };
  }

  /** Forgets idle entities, closes idle sessions into the session-length baseline, drops dead rule state and cool-downs. */
  sweep(): void {
    const s = this.s;
    const cfg = this.config;
    const now = s.now;
    for (const app of s.apps.values()) {
      for (const [k, ss] of app.sessions) {
        if (ss.last <= now - cfg.sessionIdleMs) {
          this.closeSession(app, ss);
          app.sessions.delete(k);
        }
      }
      if (app.sessionsDone >= 200) app.longThresholdMs = quantileMs(app.sessionHist, 0.999);
      for (const [k, d] of app.devices) if (d.last <= now - cfg.deviceIdleMs) app.devices.delete(k);
      for (const [k, u] of app.users) if (u.last <= now - cfg.userIdleMs) app.users.delete(k);
      for (const [k, i] of app.ips) if (i.last <= now - cfg.ipIdleMs) app.ips.delete(k);
      capByLast(app.sessions, cfg.maxEntities);
      capByLast(app.devices, cfg.maxEntities);
      capByLast(app.users, cfg.maxEntities);
      capByLast(app.ips, cfg.maxEntities);
    }
    evictRuleState(s.rules, this.rules, now);
    const maxCooldown = Math.max(cfg.buildCooldownMs, cfg.botCooldownMs, 86_400_000, ...this.rules.map((r) => r.cooldownMs));
    for (const [k, t] of s.cooldowns) if (t <= now - maxCooldown) s.cooldowns.delete(k);
  }

  stats(): EngineStats {
    let sessions = 0;
    let devices = 0;
    let users = 0;
    let ips = 0;
    for (const a of this.s.apps.values()) {
      sessions += a.sessions.size;
      devices += a.devices.size;
      users += a.users.size;
      ips += a.ips.size;
    }
    let ruleStates = 0;
    for (const m of this.s.rules.windows.values()) ruleStates += m.size;
    for (const m of this.s.rules.marks.values()) ruleStates += m.size;
    return { events: this.s.seen, now: this.s.now, apps: this.s.apps.size, sessions, devices, users, ips, ruleStates, cooldowns: this.s.cooldowns.size };
  }

  /** The whole state (models, entities, rule windows, cool-downs, recently raised ids), gzipped JSON. */
  snapshot(): Buffer {
    return encodeState(this.s);
  }

  /** The same as `snapshot()`, compressing off the calling thread (the live detector uses this). */
  snapshotAsync(): Promise<Buffer> {
    return encodeStateAsync(this.s);
  }

  /** Replaces the state with a snapshot's (rules stay those set on this engine). */
  restore(buf: Buffer | Uint8Array): void {
    const st = decodeState<EngineState>(buf);
    if (!st || st.v !== 1) throw new Error('not a detector snapshot (or from an incompatible version)');
    this.s = st;
    this.raisedSet = new Set(st.raised);
  }

  static fromSnapshot(buf: Buffer | Uint8Array, o: EngineOptions = {}): DetectionEngine {
    const e = new DetectionEngine(o);
    e.restore(buf);
    return e;
  }
}

function quantileMs(hist: Float64Array, q: number): number {
  let total = 0;
  for (const c of hist) total += c;
  let acc = 0;
  for (let b = 0; b < hist.length; b++) {
    acc += hist[b]!;
    if (acc >= q * total) return bucketUpperMs(b);
  }
  return bucketUpperMs(hist.length - 1);
}

/** Over the cap, forgets the entities seen least recently (down to 90 % of the cap). */
function capByLast<T extends { last: number }>(m: Map<string, T>, cap: number): void {
  if (m.size <= cap) return;
  const byLast = [...m].sort((a, b) => a[1].last - b[1].last);
  const drop = m.size - Math.floor(cap * 0.9);
  for (let i = 0; i < drop; i++) m.delete(byLast[i]![0]);
}
