// The demo's bar: `causality demo` shows its first anomaly within 60 s of start. Runs the real command (default speed
// and rate, port 0, its own temp dir) N times and measures, from the spawn, through the HTTP API it prints (polled
// every 250 ms): the first stored anomaly, an anomaly of every injected kind, and the revenue incident with its ranked
// cause and cost. Other work on the machine (other helpers, a build) slows the start; the load average is recorded.
// Run alone: `node dist/bench/demo.js` (also `npm run bench -- --only demo`). Writes bench/results/demo-<date>.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEPLOY_ID, demoMetricPlan, injectedEffect } from '../src/cli/demo.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INJECTED_KINDS = ['modified_client', 'brute_force', 'credential_stuffing'] as const;

export interface DemoRun {
  /** Seconds from spawn to: the printed URL, the first anomaly, one of each injected kind, the revenue incident. */
  urlS: number;
  firstAnomalyS: number | null;
  allKindsS: number | null;
  crashS: number | null;
  deployRankedFirst: boolean;
  costInterval: { estimate: number; lower: number; upper: number } | null;
  injectedLoss: number | null;
  costHoldsInjected: boolean;
  loadAvgAtStart: number;
}

export interface DemoBenchReport {
  date: string;
  runs: DemoRun[];
  firstAnomalyS: { median: number | null; max: number | null };
  crashS: { median: number | null; max: number | null };
  bars: { firstAnomalyUnder60s: boolean; deployFirstEveryRun: boolean; costHoldsInjectedEveryRun: boolean };
}

async function oneRun(deadlineS: number): Promise<DemoRun> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(CAUSALITY_|PORT$|HOST$|IP_HASH_SALT$|TRUSTED_PROXIES$|DETECTOR)/.test(k)) delete env[k];
  const loadAvgAtStart = os.loadavg()[0]!;
  const started = performance.now();
  const since = () => Math.round((performance.now() - started) / 100) / 10;
  const child = spawn(process.execPath, ['bin/causality.js', 'demo', '--port', '0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', () => {});
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const run: DemoRun = { urlS: 0, firstAnomalyS: null, allKindsS: null, crashS: null, deployRankedFirst: false, costInterval: null, injectedLoss: null, costHoldsInjected: false, loadAvgAtStart };
  try {
    let url = '';
    let key = '';
    while (!url) {
      if (child.exitCode !== null) throw new Error(`demo exited early:\n${out}`);
      if (since() > deadlineS) throw new Error(`no URL after ${deadlineS} s:\n${out}`);
      url = /^\s*API:\s+(\S+)/m.exec(out)?.[1] ?? '';
      key = /^\s*admin key:\s+(\S+)/m.exec(out)?.[1] ?? '';
      if (!url || !key) url = '';
      await new Promise((r) => setTimeout(r, 100));
    }
    run.urlS = since();
    const get = async (path: string) => (await (await fetch(`${url}${path}`, { headers: { 'x-api-key': key } })).json()) as any;
    while (since() < deadlineS && (run.allKindsS === null || run.crashS === null)) {
      if (run.allKindsS === null) {
        const items = ((await get('/v1/anomalies?limit=1000')).items ?? []) as Array<{ category: string }>;
        if (items.length && run.firstAnomalyS === null) run.firstAnomalyS = since();
        if (INJECTED_KINDS.every((k) => items.some((a) => a.category === k))) run.allKindsS = since();
      }
      if (run.crashS === null) {
        const incidents = ((await get('/v1/incidents?app_id=shop')).incidents ?? []) as Array<Record<string, any>>;
        const inc = incidents.find((i) => i.series === 'revenue' && i.impact && i.candidates?.length);
        if (inc) {
          run.crashS = since();
          run.deployRankedFirst = inc.candidates[0].change.id === DEPLOY_ID;
          const series = ((await get('/v1/series?app_id=shop')).series ?? []) as Array<{ name: string; first: string | number }>;
          const first = series.find((s) => s.name === 'revenue')!.first;
          const plan = demoMetricPlan(typeof first === 'number' ? first : Date.parse(first));
          const ts = (inc.impact.effect.pointwise as Array<{ ts: string | number }>).map((p) => (typeof p.ts === 'number' ? p.ts : Date.parse(p.ts)));
          const c = inc.impact.effect.cumulative as { estimate: number; lower: number; upper: number };
          run.costInterval = { estimate: Math.round(c.estimate), lower: Math.round(c.lower), upper: Math.round(c.upper) };
          run.injectedLoss = Math.round(injectedEffect(plan, ts));
          run.costHoldsInjected = c.lower <= run.injectedLoss && run.injectedLoss <= c.upper;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  return run;
}

const median = (xs: number[]) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function runDemoBench(o: { runs?: number; deadlineS?: number; log?: (line: string) => void } = {}): Promise<DemoBenchReport> {
  const runs: DemoRun[] = [];
  for (let i = 0; i < (o.runs ?? 3); i++) {
    const r = await oneRun(o.deadlineS ?? 180);
    o.log?.(`  run ${i + 1}: URL ${r.urlS} s, first anomaly ${r.firstAnomalyS ?? '-'} s, all injected kinds ${r.allKindsS ?? '-'} s, crash + cause + cost ${r.crashS ?? '-'} s (deploy first: ${r.deployRankedFirst}, cost ${r.costInterval ? `${r.costInterval.estimate} [${r.costInterval.lower}, ${r.costInterval.upper}]` : '-'} vs injected ${r.injectedLoss ?? '-'}), load avg ${r.loadAvgAtStart.toFixed(2)}`);
    runs.push(r);
  }
  const firsts = runs.map((r) => r.firstAnomalyS).filter((v): v is number => v !== null);
  const crashes = runs.map((r) => r.crashS).filter((v): v is number => v !== null);
  const report: DemoBenchReport = {
    date: new Date().toISOString(),
    runs,
    firstAnomalyS: { median: median(firsts), max: firsts.length ? Math.max(...firsts) : null },
    crashS: { median: median(crashes), max: crashes.length ? Math.max(...crashes) : null },
    bars: {
      firstAnomalyUnder60s: firsts.length === runs.length && firsts.every((s) => s <= 60),
      deployFirstEveryRun: runs.every((r) => r.deployRankedFirst),
      costHoldsInjectedEveryRun: runs.every((r) => r.costHoldsInjected),
    },
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `demo-${report.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await runDemoBench({ log: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
