// `causality demo`: one command that starts an embedded node and drives it the way a newcomer needs to see it work.
// Live labelled traffic (the generator's two apps, sent over HTTP at a modest rate), a detector warmed on the
// few minutes of clean traffic before now, scripted attacks from the generator's scenarios within the first minute, and a
// business metric (`revenue`, with `signups`) replayed over its last 36 hours on top of four weeks of history, with a
// deploy that drops revenue. Progress lines come from the public API, as a user polling it would see them.
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import pino from 'pino';
import YAML from 'yaml';
import { loadConfig } from '../config.js';
import { startNode, type RunningNode } from '../node.js';
import { syntheticSeries, type SyntheticSeries } from '../causal/synthetic.js';
import { FILE_IP_SALT } from '../detect/ip.js';
import { simulate, type GenEvent, type Injection } from '../generate/simulate.js';
import { COUNTRIES, DIURNAL, WEEKLY } from '../generate/world.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ---- the metric story -----------------------------------------------------------------------------------------------

/** Four weeks of hourly history (the monitor needs two), then the last 36 hours replayed at `--speed`. */
export const HISTORY_POINTS = 28 * 24;
export const REPLAY_POINTS = 36;
/** The deploy lands 5 minutes before this replayed point; revenue runs 30 % lower for 14 hours, until a rollback. */
export const DEPLOY_REPLAY_INDEX = 6;
export const DROP = -0.3;
export const DROP_POINTS = 14;
export const DEPLOY_ID = 'deploy-checkout-4.12.0';

export interface DemoChange {
  id: string;
  time: string;
  [k: string]: unknown;
}

export interface MetricPlan {
  /** Timestamp of the first history point (the start of everything). */
  start: number;
  revenue: SyntheticSeries;
  signups: SyntheticSeries;
  /** Index of the first point the deploy affects. */
  deployIndex: number;
  changes: DemoChange[];
}

/**
 * The demo's metrics and change log from the first history timestamp: deterministic, so a test or a bench reading
 * `first` of the stored series rebuilds the injected truth (`revenue.counterfactual` is revenue without the deploy).
 */
export function demoMetricPlan(start: number, seed = 7): MetricPlan {
  const deployIndex = HISTORY_POINTS + DEPLOY_REPLAY_INDEX;
  // Extra points past the replay: the live tail, one per real hour while the demo keeps running.
  const points = HISTORY_POINTS + REPLAY_POINTS + 24 * 14;
  const revenue = syntheticSeries({
    seed,
    start,
    points,
    base: 1200,
    noise: 0.03,
    trendPerDay: 0.002,
    effect: { atIndex: deployIndex, shape: 'temporary', size: DROP, durationPoints: DROP_POINTS },
  });
  const signups = syntheticSeries({ seed: seed + 1, start, points, base: 40, noise: 0.05, dailyAmplitude: 0.4 });
  const at = (i: number, minutes: number) => new Date(start + i * HOUR + minutes * 60_000).toISOString();
  const h = HISTORY_POINTS;
  const changes: DemoChange[] = [
    { id: 'deploy-search-2.8.1', kind: 'deploy', service: 'search', version: '2.8.1', time: at(h - 20, 15), title: 'deploy search 2.8.1: ranking tweaks', paths: ['search/ranking.ts'] },
    { id: 'commit-docs-7f3a', kind: 'commit', commit: '7f3a9c1', service: 'docs', time: at(h + 2, 10), title: 'docs: fix typos in the API guide', paths: ['docs/api.md', 'README.md'], author: 'sam' },
    { id: 'SUP-311', kind: 'ticket', service: 'SUP', time: at(h + 4, 25), title: 'SUP-311: customers report slow image loading', author: 'support' },
    {
      id: DEPLOY_ID,
      kind: 'deploy',
      service: 'checkout',
      version: '4.12.0',
      time: at(deployIndex, -5),
      title: 'deploy checkout 4.12.0: new payment retry logic',
      paths: ['src/payments/retry.ts', 'src/checkout/submit.ts'],
      author: 'alex',
      size: { additions: 420, deletions: 95, files: 9 },
    },
    { id: 'rollback-checkout-4.11.3', kind: 'deploy', service: 'checkout', version: '4.11.3', time: at(deployIndex + DROP_POINTS, -5), title: 'rollback checkout to 4.11.3' },
  ];
  return { start, revenue, signups, deployIndex, changes };
}

/** Injected effect (actual − counterfactual) summed over the given timestamps: the truth a cost estimate should hold. */
export function injectedEffect(plan: MetricPlan, timestamps: readonly number[]): number {
  let sum = 0;
  for (const t of timestamps) {
    const i = Math.round((t - plan.start) / HOUR);
    if (i >= 0 && i < plan.revenue.ts.length) sum += plan.revenue.values[i]! - plan.revenue.counterfactual[i]!;
  }
  return sum;
}

// ---- the traffic story ----------------------------------------------------------------------------------------------

/** Events a simulated user makes per second at activity 1 (as in generate/live.ts). */
const BASE_USER_RATE = (2.5 * 35) / 86_400;
/**
 * Events per second per user the demo aims at: many users each a few dozen sessions a day. Fewer, busier users (as
 * `load --random` sizes them) would order several times in twenty minutes and look like payment fraud.
 */
const DEMO_USER_RATE = 0.03;

/** Activity (relative to the daily mean) of the simulated population at `t`, from the world's diurnal/weekly shapes. */
function activityNow(t: number): number {
  const dMean = DIURNAL.reduce((a, b) => a + b, 0) / 24;
  const wMean = WEEKLY.reduce((a, b) => a + b, 0) / 7;
  let sum = 0;
  let weights = 0;
  for (const c of COUNTRIES) {
    const local = t + c.utcOffset * HOUR;
    const hour = Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
    const dow = Math.floor(local / DAY + 4) % 7;
    sum += c.weight * (DIURNAL[hour]! / dMean) * (WEEKLY[dow]! / wMean);
    weights += c.weight;
  }
  return sum / weights;
}

/** The scripted incidents, seconds after traffic starts (divided by --speed). */
export const INCIDENTS: ReadonlyArray<{ afterS: number; what: string; injection: Omit<Injection, 'at'> }> = [
  { afterS: 2, what: 'a tampered client (unknown build, taps faster than a thumb)', injection: { scenario: 'modified_client', appId: 'shop', traits: ['unknown_build', 'inhuman_taps'] } },
  { afterS: 8, what: 'a brute-force login wave (3 attackers)', injection: { scenario: 'brute_force', appId: 'shop' } },
  { afterS: 9, what: '', injection: { scenario: 'brute_force', appId: 'food' } },
  { afterS: 10, what: '', injection: { scenario: 'brute_force', appId: 'shop' } },
  { afterS: 12, what: 'credential stuffing from one address', injection: { scenario: 'credential_stuffing', appId: 'food' } },
  { afterS: 15, what: 'a scripted bot', injection: { scenario: 'bot', appId: 'shop' } },
];

// ---- running it -----------------------------------------------------------------------------------------------------

export interface DemoOptions {
  port: number;
  host: string;
  /** Default: a fresh temp dir, removed on stop. */
  dataDir?: string;
  /** Time scale of the script (incidents, metric replay): 2 = twice as fast. Traffic stays real-time. */
  speed: number;
  /** Target events per second of live traffic. */
  rate: number;
  seed: number;
  /** Minutes of clean traffic before now the detector learns from on a fresh data dir. */
  warmMinutes: number;
  /** Random attack instances per normal session, besides the scripted ones. */
  attackRate: number;
  out: (line: string) => void;
}

export interface RunningDemo {
  url: string;
  uiUrl: string;
  adminKey: string;
  dataDir: string;
  node: RunningNode;
  stop(): Promise<void>;
}

/** Environment settings the demo decides itself (an operator's shell may hold them for a real install). */
const DEMO_OWNED_ENV = new Set([
  'CAUSALITY_DATA_DIR', 'CAUSALITY_CONFIG', 'CAUSALITY_APP_KEYS', 'CAUSALITY_ADMIN_KEY', 'CAUSALITY_HMAC_SECRETS', 'IP_HASH_SALT',
  'TRUSTED_PROXIES', 'DETECTOR_WARM_FROM', 'DETECTOR', 'PORT', 'HOST', 'RULES_DIR', 'CAUSALITY_BUS', 'DATABASE_URL', 'S3_BUCKET',
]);

interface DemoKeys {
  adminKey: string;
  apps: Record<string, string>;
}

/** Writes the demo's config on a fresh data dir: two app keys, trusted loopback proxy, the warm-up file, quiet logs. */
function ensureDemoConfig(dataDir: string, warmFile: string): void {
  const path = join(dataDir, 'config.yaml');
  if (existsSync(path)) return;
  mkdirSync(dataDir, { recursive: true });
  const key = (p: string) => `${p}_${randomBytes(12).toString('base64url')}`;
  const doc = {
    apps: [
      { appId: 'shop', key: key('shop') },
      { appId: 'food', key: key('food') },
    ],
    adminKey: key('admin'),
    // The generator's file salt: the warm-up file's IP entities and the live ones then hash alike.
    ipSalt: FILE_IP_SALT,
    // The demo's own sender tells each event's simulated client address in X-Forwarded-For.
    trustedProxies: ['127.0.0.1', '::1'],
    detectorWarmFrom: warmFile,
    // Info lines go to <dataDir>/node.log; the detector thread logs to stdout, where only warnings belong in a demo.
    logLevel: 'warn',
  };
  writeFileSync(path, `# Written by \`causality demo\` (dev keys).\n${YAML.stringify(doc)}`, { mode: 0o600 });
}

async function api<T = any>(base: string, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: res.status, body: parsed as T };
}

const money = (v: number) => `${v < 0 ? '−' : ''}${Math.abs(v).toLocaleString('en-US', { maximumFractionDigits: 0 })}`;
const short = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export async function runDemo(o: DemoOptions): Promise<RunningDemo> {
  const t0 = Date.now();
  const since = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`;
  const say = (line: string) => o.out(`${since()} ${line}`);
  const tempDir = o.dataDir === undefined;
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), 'causality-demo-')));
  const warmFile = join(dataDir, 'demo-warm.jsonl');
  const fresh = !existsSync(join(dataDir, 'state.db'));
  ensureDemoConfig(dataDir, warmFile);

  // Traffic: one simulation that starts `warmMinutes` before now; what happened before now is the detector's clean
  // training (no attacks), what happens after is sent live, event by event at its own time.
  const now = Date.now();
  const users = Math.max(200, Math.ceil(o.rate / DEMO_USER_RATE));
  const activity = Math.max(1, o.rate / (users * BASE_USER_RATE * activityNow(now)));
  const warmStart = now - o.warmMinutes * 60_000;
  const seed = fresh ? o.seed : o.seed + (now % 100_000); // a reused data dir has seen the default seed's event ids
  const injections: Injection[] = INCIDENTS.map((i) => ({ ...i.injection, at: now + (i.afterS * 1000) / o.speed }));
  const gen = simulate(
    { seed, users, start: warmStart, durationMs: 0, anomalyRate: o.attackRate, activity, attacksFrom: now, releaseAt: warmStart - 2 * HOUR, injections },
    () => {},
  );
  let pending: GenEvent | null = null;
  const nextEvent = (): GenEvent => {
    const n = gen.next();
    if (n.done) throw new Error('the simulation ended (it should not)');
    return n.value;
  };
  if (fresh) {
    const w = createWriteStream(warmFile);
    let n = 0;
    let chunk: string[] = [];
    for (;;) {
      const e = nextEvent();
      if (e.timestamp >= now) {
        pending = e;
        break;
      }
      chunk.push(JSON.stringify(e));
      n++;
      if (chunk.length >= 2000) {
        if (!w.write(`${chunk.join('\n')}\n`)) await new Promise<void>((r) => w.once('drain', () => r()));
        chunk = [];
      }
    }
    if (chunk.length) w.write(`${chunk.join('\n')}\n`);
    await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
    say(`generated ${n.toLocaleString('en-US')} events of clean traffic (${o.warmMinutes} min before now, ${users.toLocaleString('en-US')} users of two apps) for the detector to learn from`);
  } else {
    for (;;) {
      const e = nextEvent();
      if (e.timestamp >= now) {
        pending = e;
        break;
      }
    }
  }

  // The demo's own settings win over the environment's keys, salt, proxies and paths.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !DEMO_OWNED_ENV.has(k)));
  const { config } = loadConfig({ dataDir, port: o.port, host: o.host }, env);
  const nodeLog = pino({ level: 'info' }, pino.destination({ dest: join(dataDir, 'node.log'), mkdir: true, sync: false }));
  let node: RunningNode;
  try {
    node = await startNode(config, { log: nodeLog });
  } catch (err) {
    if (tempDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const base = node.url.replace('://0.0.0.0:', '://127.0.0.1:').replace('://[::]:', '://127.0.0.1:');
  const keys: DemoKeys = { adminKey: config.adminKey, apps: Object.fromEntries(config.apps.map((a) => [a.appId, a.key])) };
  const uiUrl = `${base}/ui/`;
  o.out('');
  o.out('Causality demo');
  o.out(`  UI:        ${uiUrl}`);
  o.out(`  API:       ${base}`);
  o.out(`  admin key: ${keys.adminKey}`);
  o.out(`  app keys:  ${Object.entries(keys.apps).map(([a, k]) => `${a} ${k}`).join(', ')}`);
  o.out(`  data:      ${dataDir}${tempDir ? ' (removed on exit)' : ''}`);
  o.out(`  try:       curl -H 'X-API-Key: ${keys.adminKey}' '${base}/v1/anomalies?limit=5'   (also /v1/incidents, /v1/series/revenue?app_id=shop)`);
  o.out('  Ctrl-C stops it.');
  o.out('');
  say(`node up; sending live traffic at about ${o.rate} events/s; incidents start in ${Math.ceil(INCIDENTS[0]!.afterS / o.speed)} s`);

  // The simulation's "now" was fixed before the warm-up file and the node's start: its live part is shifted to begin
  // at this moment, so the incidents happen when announced (and the warm-up ends with a short lull, not a burst).
  const liveShift = Date.now() - now;
  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p)).catch(() => {});
    return p;
  };
  const guard = (what: string, p: Promise<unknown>) =>
    track(p).catch((err: Error) => {
      if (!stopping) nodeLog.warn({ err }, `demo: ${what} failed`);
    });

  // ---- live traffic: every tick, the events now due, one request per app and client address ----------------------
  let sent = 0;
  let failed = 0;
  let sending = false;
  const sendDue = async () => {
    if (sending || stopping) return;
    sending = true;
    try {
      const due = Date.now();
      const groups = new Map<string, GenEvent[]>();
      while (pending && pending.timestamp + liveShift <= due) {
        const e = pending;
        e.timestamp += liveShift;
        const ctx = e.context as Record<string, unknown> | undefined;
        const ip = typeof ctx?.ip === 'string' ? ctx.ip : '';
        if (ctx && 'ip' in ctx) {
          const { ip: _ip, ...rest } = ctx;
          e.context = rest;
        }
        const k = `${e.appId}\u0000${ip}`;
        const g = groups.get(k);
        if (g) g.push(e);
        else groups.set(k, [e]);
        pending = nextEvent();
      }
      const jobsSizes = [...groups.values()].map((g) => g.length);
      const jobs = [...groups].map(([k, events]) => async () => {
        const [appId, ip] = k.split('\u0000') as [string, string];
        const res = await fetch(`${base}/v1/events/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': keys.apps[appId] ?? keys.adminKey, ...(ip ? { 'x-forwarded-for': ip } : {}) },
          body: JSON.stringify({ events }),
        });
        await res.arrayBuffer();
        if (res.status >= 400) failed += events.length;
        else sent += events.length;
      }).map((job, j) => () => job().catch(() => void (failed += jobsSizes[j]!)));
      // A few requests at a time: the sender must leave the laptop (and the node) room.
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < jobs.length && !stopping) {
            const job = jobs[next++]!;
            await job();
          }
        }),
      );
    } finally {
      sending = false;
    }
  };
  timers.push(setInterval(() => void guard('sending traffic', sendDue()), 250));
  // Scripted incidents, announced when they start.
  for (const inc of INCIDENTS) {
    if (!inc.what) continue;
    timers.push(setTimeout(() => say(`incident injected: ${inc.what}`), (inc.afterS * 1000) / o.speed));
  }

  // ---- anomalies as the API lists them --------------------------------------------------------------------------------
  const seen = new Set<string>();
  let firstAnomaly = true;
  const watchAnomalies = async () => {
    const r = await api<{ items: Array<Record<string, any>> }>(base, keys.adminKey, 'GET', `/v1/anomalies?from=${now}&limit=200`);
    if (r.status !== 200) return;
    const fresh = r.body.items.filter((a) => !seen.has(a.id)).reverse();
    let shown = 0;
    for (const a of fresh) {
      seen.add(a.id);
      if (shown++ >= 8) continue;
      const cat = String(a.category).replace(/_/g, ' ');
      say(
        `anomaly${firstAnomaly ? ' (first)' : ''}: ${cat} on ${a.entityType} ${short(String(a.entityId), 20)} in ${a.appId}: ${a.source}, ${a.severity}: ${short(String(a.explanation), 110)}`,
      );
      firstAnomaly = false;
    }
    if (shown > 8) say(`… and ${shown - 8} more anomalies (GET /v1/anomalies)`);
  };
  timers.push(setInterval(() => void guard('listing anomalies', watchAnomalies()), 1000));

  // ---- the metric: history at once, then the last 36 hours replayed, then one point per real hour ------------------
  const lastHour = Math.floor(now / HOUR) * HOUR;
  const planStart = lastHour - (HISTORY_POINTS + REPLAY_POINTS - 1) * HOUR;
  const plan = demoMetricPlan(planStart, o.seed);
  const shopKey = keys.apps.shop ?? keys.adminKey;
  const point = (s: SyntheticSeries, i: number) => ({ timestamp: s.ts[i]!, value: Math.round(s.values[i]! * 100) / 100 });
  const reportedIncidents = new Map<string, string>();
  const printedPoints = new Map<string, number>();
  const describeIncident = async (id: string, how: 'opened' | 'update' | 'resolved') => {
    const r = await api<Record<string, any>>(base, shopKey, 'GET', `/v1/incidents/${id}`);
    if (r.status !== 200) return;
    const inc = r.body;
    const top = inc.candidates?.[0];
    const cost = inc.impact?.effect?.cumulative as { estimate: number; lower: number; upper: number } | undefined;
    const pts = ((inc.impact?.effect?.pointwise ?? []) as Array<{ ts: string | number }>).map((p) => (typeof p.ts === 'number' ? p.ts : Date.parse(p.ts)));
    const truth = injectedEffect(plan, pts);
    const costText = cost ? `cost ${money(cost.estimate)} [${money(cost.lower)}, ${money(cost.upper)}] over ${pts.length} h (injected ${money(truth)})` : 'cost not estimable yet';
    const unchanged = printedPoints.get(id) === pts.length;
    printedPoints.set(id, pts.length);
    if (how === 'opened') {
      say(`crash detected on ${inc.series}: ${short(String(inc.explanation), 90)}`);
      if (top) say(`  cause #1 (${top.change.kind}) ${top.change.title} (score ${Number(top.score).toFixed(2)}: ${short(top.reasons.join('; '), 90)})`);
      for (const c of (inc.candidates ?? []).slice(1, 3)) say(`  then (${c.change.kind}) ${short(c.change.title, 60)} (score ${Number(c.score).toFixed(2)})`);
      say(`  ${costText}`);
    } else if (how === 'update') {
      if (!unchanged) say(`revenue incident ${inc.status}: ${costText}`);
    } else say(`revenue incident resolved: ${costText}${inc.impact?.ongoing === false ? `, ended ${inc.impact.end}` : ''}`);
  };

  const history = Array.from({ length: HISTORY_POINTS }, (_, i) => i);
  const push = async (name: string, s: SyntheticSeries, idx: number[]) => {
    const r = await api<{ incidentsOpened: string[]; incidentsResolved: string[] }>(base, shopKey, 'POST', `/v1/series/${name}`, { points: idx.map((i) => point(s, i)) });
    if (r.status !== 202) throw new Error(`POST /v1/series/${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const pushChanges = async (from: number, to: number) => {
    for (const c of plan.changes) {
      const t = Date.parse(c.time);
      if (t >= from && t < to) {
        const r = await api<{ change: { risk?: { level: string } } }>(base, shopKey, 'POST', '/v1/changes', c);
        if (t >= plan.start + HISTORY_POINTS * HOUR) say(`change (${c.kind}): ${c.title} at ${c.time.slice(11, 16)} UTC (risk ${r.body.change?.risk?.level ?? '?'})`);
      }
    }
  };
  const onPushed = async (res: { incidentsOpened: string[]; incidentsResolved: string[] }) => {
    for (const id of res.incidentsOpened) {
      reportedIncidents.set(id, 'open');
      await describeIncident(id, 'opened');
    }
    for (const id of res.incidentsResolved) {
      reportedIncidents.set(id, 'resolved');
      await describeIncident(id, 'resolved');
    }
  };
  let replayed = 0;
  const replayStep = async () => {
    if (stopping) return;
    const i = HISTORY_POINTS + replayed;
    await pushChanges(plan.revenue.ts[i]! - HOUR, plan.revenue.ts[i]! + 1);
    const res = await push('revenue', plan.revenue, [i]);
    await push('signups', plan.signups, [i]);
    replayed++;
    await onPushed(res);
    // While an incident is open, re-estimate its cost now and then as hours accumulate.
    if (replayed % 4 === 0) {
      for (const [id, status] of reportedIncidents) {
        if (status !== 'open') continue;
        const a = await api(base, shopKey, 'POST', `/v1/incidents/${id}/analyze`);
        if (a.status === 200) await describeIncident(id, 'update');
      }
    }
  };
  const startMetrics = async () => {
    await pushChanges(plan.start, plan.start + HISTORY_POINTS * HOUR);
    const res = await push('revenue', plan.revenue, history);
    await push('signups', plan.signups, history);
    await onPushed(res);
    const stepMs = 4000 / o.speed;
    say(`metrics: 4 weeks of hourly revenue and signups stored; replaying the last ${REPLAY_POINTS} hours at one hour per ${(stepMs / 1000).toFixed(1)} s`);
    let busy = false;
    const timer = setInterval(() => {
      if (busy || stopping) return;
      if (replayed >= REPLAY_POINTS) {
        clearInterval(timer);
        say('metrics: replay done; revenue and signups now get one point per real hour');
        timers.push(setInterval(() => void guard('live metric point', liveStep()), 30_000));
        return;
      }
      busy = true;
      void guard('replaying metrics', replayStep()).finally(() => {
        busy = false;
      });
    }, stepMs);
    timers.push(timer);
  };
  const liveStep = async () => {
    const i = Math.floor((Date.now() - plan.start) / HOUR) - 1; // the last complete hour
    if (i < HISTORY_POINTS + replayed || i >= plan.revenue.ts.length) return;
    replayed = i - HISTORY_POINTS + 1;
    await onPushed(await push('revenue', plan.revenue, [i]));
    await push('signups', plan.signups, [i]);
  };
  void guard('starting metrics', startMetrics());

  let stopped: Promise<void> | null = null;
  return {
    url: base,
    uiUrl,
    adminKey: keys.adminKey,
    dataDir,
    node,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        for (const t of timers) clearInterval(t);
        await Promise.allSettled([...inflight]);
        say(`stopping: sent ${sent.toLocaleString('en-US')} events (${failed} failed), ${seen.size} anomalies; flushing`);
        await node.close();
        nodeLog.flush();
        if (tempDir) await rm(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start everything embedded with live traffic, injected incidents and a revenue crash; print the URL')
    .addOption(new Option('--port <n>', 'listen port (0 = any free port)').default(8080).argParser((v) => Number(v)))
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--data-dir <dir>', 'data directory (default: a fresh temp dir, removed on exit)')
    .addOption(new Option('--speed <x>', 'time scale of the scripted incidents and the metric replay').default(1).argParser((v) => Number(v)))
    .addOption(new Option('--rate <n>', 'live events per second').default(300).argParser((v) => Number(v)))
    .addOption(new Option('--seed <n>', 'random seed').default(7).argParser((v) => Number(v)))
    .addOption(new Option('--warm-minutes <n>', 'minutes of clean traffic the detector learns from first').default(3).argParser((v) => Number(v)))
    .addOption(new Option('--attack-rate <r>', 'random attacks per normal session, besides the scripted ones').default(0.001).argParser((v) => Number(v)))
    .action(async (o: { port: number; host: string; dataDir?: string; speed: number; rate: number; seed: number; warmMinutes: number; attackRate: number }) => {
      for (const [k, v] of Object.entries({ speed: o.speed, rate: o.rate, 'warm-minutes': o.warmMinutes })) {
        if (!(v > 0)) throw new Error(`--${k} must be a positive number`);
      }
      // A Ctrl-C during the start waits for it, then stops (so the temp dir is still removed).
      let demo: RunningDemo | null = null;
      let stopRequested = false;
      const stop = async () => {
        stopRequested = true;
        if (!demo) return;
        await demo.stop();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      demo = await runDemo({ ...o, out: (line) => process.stdout.write(`${line}\n`) });
      if (stopRequested) await stop();
    });
}
