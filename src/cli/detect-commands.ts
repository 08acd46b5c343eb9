// CLI commands of the detect area: `generate` (labelled behavioural traffic to files or a server), `backtest` (the
// detectors offline over an events file) and `rules check` (validate a rules directory).
import { once } from 'node:events';
import { createWriteStream, existsSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { runBacktest } from '../detect/backtest.js';
import { readAnyEventsFile } from '../detect/event-file.js';
import { loadRulesDir, loadRulesDirStrict } from '../detect/rules-loader.js';
import type { CompiledRule } from '../detect/rules-engine.js';
import { DetectionEngine } from '../detect/engine.js';
import { SEVERITIES, severityRank, type Severity } from '../detect/anomaly.js';
import { SCENARIOS, parseSpan, simulate, type GenEvent, type Label, type Scenario } from '../generate/simulate.js';
import { APPS } from '../generate/world.js';
import { apiKey, postJson, serverUrl } from './client.js';

/** The rules shipped with the package (rules/ at the repository root). */
export const DEFAULT_RULES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'rules');
/** Default simulation start: fixed, so `--seed` alone reproduces a file byte for byte. */
export const DEFAULT_GENERATE_START = '2026-11-02T08:00:00Z';

const say = (s: string) => process.stderr.write(`${s}\n`);

/** Writes lines with backpressure, in ~1 MB chunks. */
class LineWriter {
  private buf: string[] = [];
  private size = 0;
  constructor(private readonly out: WriteStream | NodeJS.WriteStream) {}
  async write(line: string): Promise<void> {
    this.buf.push(line);
    this.size += line.length + 1;
    if (this.size >= 1 << 20) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.buf.length === 0) return;
    const chunk = `${this.buf.join('\n')}\n`;
    this.buf = [];
    this.size = 0;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }
  async close(): Promise<void> {
    await this.flush();
    if (this.out !== process.stdout) {
      (this.out as WriteStream).end();
      await once(this.out, 'finish');
    }
  }
}

interface GenerateCliOptions {
  users: string;
  duration: string;
  concurrency: string;
  anomalyRate: string;
  seed: string;
  out?: string;
  labels?: string;
  start: string;
  apps?: string;
  scenarios?: string;
  trainOut?: string;
  clean?: string;
  url?: string;
  key?: string;
  dataDir?: string;
  batchSize: string;
  realtime?: boolean;
}

function parseNumber(v: string, name: string, min: number, max = Infinity): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${v}`);
  return n;
}

async function generateCommand(o: GenerateCliOptions): Promise<void> {
  const users = Math.floor(parseNumber(o.users, 'users', 1, 10_000_000));
  const durationMs = parseSpan(o.duration);
  const anomalyRate = parseNumber(o.anomalyRate, 'anomaly-rate', 0, 10);
  const seed = Math.floor(parseNumber(o.seed, 'seed', 0, 2 ** 32 - 1));
  const concurrency = Math.floor(parseNumber(o.concurrency, 'concurrency', 1, 1024));
  const batchSize = Math.floor(parseNumber(o.batchSize, 'batch-size', 1, 1000));
  const forever = durationMs === 0;
  const realtime = forever || !!o.realtime;
  const start = o.start === 'now' || (forever && o.start === DEFAULT_GENERATE_START) ? Date.now() : Date.parse(o.start);
  if (!Number.isFinite(start)) throw new Error(`--start must be an ISO 8601 time or "now", got ${o.start}`);
  const scenarios = o.scenarios ? (o.scenarios.split(',').map((s) => s.trim()) as Scenario[]) : undefined;
  for (const s of scenarios ?? []) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (known: ${SCENARIOS.join(', ')})`);
  const appIds = o.apps ? o.apps.split(',').map((s) => s.trim()) : undefined;
  for (const a of appIds ?? []) if (!APPS.some((x) => x.appId === a)) throw new Error(`unknown app ${a} (known: ${APPS.map((x) => x.appId).join(', ')})`);
  const cleanMs = o.clean ? parseSpan(o.clean) : 0;
  if (o.trainOut && !cleanMs) throw new Error('--train-out needs --clean <span> (the clean training prefix)');
  if (!o.out && !o.url) throw new Error('say where events go: --out FILE (- for stdout) and/or --url URL');

  const out = o.out ? new LineWriter(o.out === '-' ? process.stdout : createWriteStream(o.out)) : null;
  const trainOut = o.trainOut ? new LineWriter(createWriteStream(o.trainOut)) : null;
  const labelsOut = o.labels ? new LineWriter(createWriteStream(o.labels)) : null;
  const pendingLabels: Label[] = [];
  const counts = { events: 0, train: 0, labels: 0, sent: 0, failed: 0 };

  // HTTP: batches posted with `concurrency` requests in flight.
  const url = o.url ? `${serverUrl({ url: o.url, dataDir: o.dataDir })}/v1/events/batch` : null;
  const key = o.url ? apiKey({ key: o.key, dataDir: o.dataDir }) : '';
  const inflight = new Set<Promise<void>>();
  let batch: GenEvent[] = [];
  const post = async (events: GenEvent[]) => {
    if (!url) return;
    const p = (async () => {
      try {
        // The server hashes the request's address; the simulated client IP is not sent (raw IPs are never stored).
        const body = events.map((e) => {
          const { ip: _ip, ...ctx } = e.context as Record<string, unknown>;
          return { ...e, context: ctx };
        });
        const r = await postJson(url, key, { events: body });
        if (r.status >= 400) {
          counts.failed += events.length;
          if (counts.failed === events.length) say(`server answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
        } else counts.sent += events.length;
      } catch (err) {
        counts.failed += events.length;
        if (counts.failed === events.length) say(`send failed: ${(err as Error).message}`);
      }
    })();
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    while (inflight.size >= concurrency) await Promise.race(inflight);
  };

  const end = forever ? Infinity : start + durationMs;
  const bar = !forever && process.stderr.isTTY ? new SingleBar({ format: 'generate |{bar}| {percentage}% of simulated time | {events} events | {labels} attacks', hideCursor: true }, Presets.shades_classic) : null;
  bar?.start(100, 0, { events: 0, labels: 0 });
  let stopping = false;
  const onSignal = () => {
    stopping = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const it = simulate(
    { seed, users, start, durationMs, anomalyRate, scenarios, appIds, attacksFrom: cleanMs ? start + cleanMs : undefined },
    (l) => {
      if (l.eventIds.length === 0) return;
      pendingLabels.push(l);
      counts.labels++;
    },
  );
  let lastReport = 0;
  for (const e of it) {
    if (stopping) break;
    if (realtime) {
      const wait = e.timestamp - Date.now();
      if (wait > 0) {
        if (batch.length > 0) {
          await post(batch);
          batch = [];
        }
        await out?.flush();
        await new Promise((r) => setTimeout(r, Math.min(wait, 1000)));
        if (stopping) break;
      }
    }
    const line = JSON.stringify(e);
    if (trainOut && e.timestamp < start + cleanMs) {
      await trainOut.write(line);
      counts.train++;
    } else {
      if (out) await out.write(line);
      counts.events++;
    }
    if (url) {
      batch.push(e);
      if (batch.length >= batchSize) {
        await post(batch);
        batch = [];
      }
    }
    if (pendingLabels.length > 0 && labelsOut) {
      for (const l of pendingLabels.splice(0)) await labelsOut.write(JSON.stringify(l));
    }
    if (!labelsOut) pendingLabels.length = 0;
    if (bar && (counts.events + counts.train) % 5000 === 0) bar.update(Math.floor(((e.timestamp - start) / (end - start)) * 100), { events: counts.events + counts.train, labels: counts.labels });
    if (forever && Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      say(`${counts.events} events, ${counts.sent} sent, ${counts.failed} failed`);
    }
  }
  if (batch.length > 0) await post(batch);
  await Promise.all(inflight);
  if (labelsOut) for (const l of pendingLabels.splice(0)) await labelsOut.write(JSON.stringify(l));
  bar?.update(100, { events: counts.events + counts.train, labels: counts.labels });
  bar?.stop();
  await out?.close();
  await trainOut?.close();
  await labelsOut?.close();
  say(
    `generated ${counts.events} events${trainOut ? ` (+ ${counts.train} clean training events in ${o.trainOut})` : ''}` +
      `${o.out && o.out !== '-' ? ` to ${o.out}` : ''}${labelsOut ? `, attack labels in ${o.labels}` : ''}` +
      `${url ? `; sent ${counts.sent}, failed ${counts.failed}` : ''}`,
  );
  if (counts.failed > 0) process.exitCode = 1;
}

interface BacktestCliOptions {
  events: string;
  train?: string;
  rules?: string | false;
  out: string;
  minSeverity?: string;
  snapshotIn?: string;
  snapshotOut?: string;
}

async function backtestCommand(o: BacktestCliOptions): Promise<void> {
  let rules: CompiledRule[] = [];
  const rulesDir = o.rules === false ? null : (o.rules ?? DEFAULT_RULES_DIR);
  if (rulesDir) {
    if (!existsSync(rulesDir)) throw new Error(`rules directory ${rulesDir} does not exist`);
    rules = loadRulesDirStrict(rulesDir);
  }
  const minRank = o.minSeverity ? SEVERITIES.indexOf(o.minSeverity as Severity) : 0;
  if (minRank < 0) throw new Error(`--min-severity must be one of ${SEVERITIES.join(', ')}`);
  const bars = process.stderr.isTTY ? new MultiBar({ format: '{phase} |{bar}| {value}/{total} {unit}', hideCursor: true, clearOnComplete: false }, Presets.shades_classic) : null;
  const read = async (path: string, phase: string) => {
    const size = await import('node:fs').then((fs) => (fs.existsSync(path) && fs.statSync(path).isFile() ? fs.statSync(path).size : 0));
    const b = bars?.create(size, 0, { phase: `read ${phase}`, unit: 'bytes' });
    let bytes = 0;
    const r = await readAnyEventsFile(path, (n) => {
      bytes += n;
      if (bytes % 65536 < n) b?.update(bytes);
    });
    b?.update(size);
    if (r.report.invalid > 0) say(`${path}: ${r.report.invalid} invalid line(s) skipped, e.g. ${r.report.firstErrors.join('; ')}`);
    if (!r.report.sorted) say(`${path}: events were not in time order; sorted by timestamp`);
    return r.events;
  };
  const train = o.train ? await read(o.train, 'train') : undefined;
  const events = await read(o.events, 'events');
  const engine = o.snapshotIn
    ? DetectionEngine.fromSnapshot(await import('node:fs').then((fs) => fs.readFileSync(o.snapshotIn!)), { rules })
    : new DetectionEngine({ rules });
  const out = new LineWriter(o.out === '-' ? process.stdout : createWriteStream(o.out));
  const pending: string[] = [];
  const bySource = new Map<string, number>();
  const trainBar = train ? bars?.create(train.length, 0, { phase: 'train', unit: 'events' }) : undefined;
  const detectBar = bars?.create(events.length, 0, { phase: 'detect', unit: 'events' });
  const res = runBacktest({
    engine,
    train,
    events,
    onAnomaly: (a) => {
      if (severityRank(a.severity) < minRank) return;
      pending.push(JSON.stringify(a));
      bySource.set(a.source, (bySource.get(a.source) ?? 0) + 1);
    },
    onProgress: (phase, done) => (phase === 'train' ? trainBar : detectBar)?.update(done),
    progressEvery: 20_000,
  });
  bars?.stop();
  for (const line of pending) await out.write(line);
  await out.close();
  if (o.snapshotOut) writeFileSync(o.snapshotOut, res.engine.snapshot());
  const rate = Math.round((res.trained + res.processed) / ((res.trainMs + res.detectMs) / 1000));
  say(
    `${res.processed} events${res.trained ? ` after learning from ${res.trained}` : ''}, ${pending.length} anomalies ` +
      `(${rules.length} rules; ${rate.toLocaleString('en-US')} events/s) → ${o.out}` +
      (bySource.size ? `\n  ${[...bySource].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s}: ${n}`).join('\n  ')}` : ''),
  );
}

export function registerDetectCommands(program: Command): void {
  program
    .command('generate')
    .description('labelled behavioural traffic (users, sessions, a release, attacks) as JSONL events + labels, or live to a server')
    .option('--users <n>', 'simulated users', '1000')
    .option('--duration <span>', 'simulated time: 90m, 2h, 1d; 0 = forever (streams in real time)', '2h')
    .option('--concurrency <n>', 'with --url: requests in flight', '4')
    .option('--anomaly-rate <r>', 'attack instances per normal session', '0.02')
    .option('--seed <n>', 'random seed (same seed, same options → same files)', '1')
    .option('--out <file>', 'events file (JSONL, HTTP envelope, flat shape); - for stdout')
    .option('--labels <file>', 'attack labels (JSONL: scenario, entityType, entityId, appId, startTs, endTs, eventIds, …)')
    .option('--start <time>', 'simulation start (ISO 8601 or "now")', DEFAULT_GENERATE_START)
    .option('--apps <list>', `apps to simulate (${APPS.map((a) => a.appId).join(', ')})`)
    .option('--scenarios <list>', `attack scenarios (${SCENARIOS.join(', ')})`)
    .option('--clean <span>', 'no attacks during this first part of the period (a training prefix)')
    .option('--train-out <file>', 'with --clean: write the clean prefix here instead of --out')
    .option('--url <url>', 'also POST the events to this server (env CAUSALITY_URL)')
    .option('--key <key>', 'API key for --url (env CAUSALITY_KEY)')
    .option('--data-dir <dir>', 'data directory holding the dev config (for --url defaults)')
    .option('--batch-size <n>', 'with --url: events per request', '200')
    .option('--realtime', 'pace events at their timestamps (implied by --duration 0)')
    .action(generateCommand);

  program
    .command('backtest')
    .description('run the detectors offline over a JSONL events file (optionally learning from a known-good file first) and write every anomaly as a JSON line')
    .requiredOption('--events <file>', 'events to score: JSONL in the HTTP envelope, or Parquet (a file, a glob, or the warehouse directory)')
    .option('--train <file>', 'known-good events to learn from first (nothing is raised while learning)')
    .option('--rules <dir>', 'rules directory (default: the shipped rules/)')
    .option('--no-rules', 'models only')
    .requiredOption('--out <file>', 'anomalies (JSONL); - for stdout')
    .option('--min-severity <s>', `only write anomalies at or above (${SEVERITIES.join(', ')})`)
    .option('--snapshot-in <file>', 'start from this engine snapshot instead of empty models')
    .option('--snapshot-out <file>', 'write the engine state after the run (to continue later or go live with it)')
    .action(backtestCommand);

  const rules = program.command('rules').description('detection rules');
  rules
    .command('check')
    .description('validate every rules file of a directory (exit 1 and the file, rule and field on error)')
    .argument('[dir]', 'rules directory', DEFAULT_RULES_DIR)
    .action((dir: string) => {
      const r = loadRulesDir(dir);
      for (const e of r.errors) say(`error: ${e.message}`);
      say(`${r.files.length} file(s), ${r.rules.length} rule(s) loaded${r.errors.length ? `, ${r.errors.length} error(s)` : ''}`);
      for (const rule of r.rules) process.stdout.write(`${rule.id}\t${rule.kind}\t${rule.severity}\t${rule.category}\n`);
      if (r.errors.length > 0) process.exitCode = 1;
    });
}
