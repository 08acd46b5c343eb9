// `causality demo` end to end, as a newcomer runs it: the real command in a child process (port 0, its own temp dir,
// a faster script), watched only through the HTTP API it prints. Every injected incident kind becomes an anomaly, the
// revenue crash becomes an incident whose first-ranked cause is the deploy and whose cost interval holds the loss that
// was injected. Ctrl-C stops it cleanly and removes its temp dir.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { DEPLOY_ID, HISTORY_POINTS, REPLAY_POINTS, demoMetricPlan, injectedEffect } from '../src/cli/demo.js';
import { changeInputSchema } from '../src/causal/changes.js';
import { CausalService } from '../src/causal/service.js';
import { SqliteCausalStore, type Incident } from '../src/causal/store.js';
import { openSqlite } from '../src/state/sqlite.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INJECTED_KINDS = ['modified_client', 'brute_force', 'credential_stuffing'];

test('causality demo: anomalies from each injected incident, a revenue crash blamed on the deploy, its cost', { timeout: 240_000 }, async (t) => {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(CAUSALITY_|PORT$|HOST$|IP_HASH_SALT$|TRUSTED_PROXIES$|DETECTOR)/.test(k)) delete env[k];
  const started = Date.now();
  const child = spawn(process.execPath, ['bin/causality.js', 'demo', '--port', '0', '--speed', '4', '--rate', '200'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  const until = async <T>(what: string, check: () => Promise<T | null | undefined>, timeoutMs: number): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`demo exited (${child.exitCode}) while waiting for ${what}\n${out}\n${err}`);
      const v = await check().catch(() => null);
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout:\n${out}\nstderr:\n${err}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const { url, key, dataDir } = await until('the printed URL', async () => {
    const api = /^\s*API:\s+(\S+)/m.exec(out)?.[1];
    const admin = /^\s*admin key:\s+(\S+)/m.exec(out)?.[1];
    const data = /^\s*data:\s+(\S+)/m.exec(out)?.[1];
    return api && admin && data ? { url: api, key: admin, dataDir: data } : null;
  }, 90_000);
  assert.match(out, /UI:\s+http:\/\/127\.0\.0\.1:\d+\/ui\//);
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`, { headers: { 'x-api-key': key } });
    assert.equal(res.status, 200, `GET ${path}`);
    return (await res.json()) as any;
  };

  let firstAnomalyS: number | null = null;
  const anomalies = await until('an anomaly of each injected kind', async () => {
    const items = (await get('/v1/anomalies?limit=1000')).items as Array<{ category: string; source: string; entityType: string }>;
    if (items.length && firstAnomalyS === null) firstAnomalyS = (Date.now() - started) / 1000;
    return INJECTED_KINDS.every((k) => items.some((a) => a.category === k)) ? items : null;
  }, 150_000);
  process.stdout.write(`# demo: first anomaly ${firstAnomalyS!.toFixed(1)} s after start; ${anomalies.length} anomalies by then\n`);

  const incident = await until('a revenue incident with its impact', async () => {
    const list = (await get('/v1/incidents?app_id=shop')).incidents as Array<Record<string, any>>;
    return list.find((i) => i.series === 'revenue' && i.impact) ?? null;
  }, 60_000);
  assert.equal(incident.direction, 'drop');
  assert.equal(incident.candidates[0].change.id, DEPLOY_ID, `ranked: ${incident.candidates.map((c: any) => c.change.id).join(', ')}`);
  // The injected truth, rebuilt from the stored series' first point (the plan is deterministic from there).
  const series = (await get('/v1/series?app_id=shop')).series as Array<{ name: string; first: string | number }>;
  const revenue = series.find((s) => s.name === 'revenue')!;
  const plan = demoMetricPlan(typeof revenue.first === 'number' ? revenue.first : Date.parse(revenue.first));
  const pointwise = incident.impact.effect.pointwise as Array<{ ts: string | number }>;
  const truth = injectedEffect(plan, pointwise.map((p) => (typeof p.ts === 'number' ? p.ts : Date.parse(p.ts))));
  const cost = incident.impact.effect.cumulative as { estimate: number; lower: number; upper: number };
  assert.ok(truth < 0, 'the deploy dropped revenue');
  assert.ok(cost.lower <= truth && truth <= cost.upper, `injected ${truth.toFixed(1)} outside [${cost.lower.toFixed(1)}, ${cost.upper.toFixed(1)}]`);
  process.stdout.write(`# demo: crash detected ${((Date.now() - started) / 1000).toFixed(1)} s after start; cost ${cost.estimate.toFixed(0)} [${cost.lower.toFixed(0)}, ${cost.upper.toFixed(0)}], injected ${truth.toFixed(0)}\n`);
  // What the newcomer reads: progress lines for the anomalies and the crash with its cause and cost.
  await until('the crash lines', async () => (/crash detected on revenue/.test(out) && /cause #1 \(deploy\) deploy checkout 4\.12\.0/.test(out) ? true : null), 20_000);
  assert.match(out, /anomaly \(first\): /);

  child.kill('SIGINT');
  assert.equal(await exited, 0, `exit code; stderr: ${err}`);
  assert.match(out, /stopping: sent [\d,]+ events \(0 failed\)/);
  assert.equal(existsSync(dataDir), false, 'the temp data dir is removed on exit');
});

// The revenue story depends on the hour the demo starts (the history ends at the current hour, and the seasonality is
// UTC). At several hours of the week, through the causal engine as the server runs it: no incident in the history,
// one after the deploy, the deploy ranked first and the injected loss inside the cost interval at every estimate the
// demo prints (on opening, every 4 replayed hours, on resolving). All 168 hours of a week were checked once the same way.
test("the demo's revenue story holds at any hour of the week", async () => {
  const HOUR = 3_600_000;
  const monday = Date.UTC(2026, 11, 7);
  for (const h of [0, 13, 38, 61, 90, 115, 140, 163]) {
    const plan = demoMetricPlan(monday + h * HOUR - (HISTORY_POINTS + REPLAY_POINTS - 1) * HOUR);
    const db = openSqlite(':memory:');
    const service = new CausalService({ store: new SqliteCausalStore(db), risk: {}, llm: null });
    const addChanges = async (from: number, to: number) => {
      for (const c of plan.changes) if (Date.parse(c.time) >= from && Date.parse(c.time) < to) await service.addChange('shop', changeInputSchema.parse(c));
    };
    const point = (i: number) => ({ ts: plan.revenue.ts[i]!, value: Math.round(plan.revenue.values[i]! * 100) / 100, segment: '' });
    let estimates = 0;
    const check = (inc: Incident | null, when: string) => {
      assert.ok(inc?.impact, `hour ${h}, ${when}: an impact`);
      assert.equal(inc.candidates[0]?.change.id, DEPLOY_ID, `hour ${h}, ${when}: the deploy ranked first`);
      const truth = injectedEffect(plan, inc.impact.effect.pointwise.map((p) => Date.parse(String(p.ts))));
      const c = inc.impact.effect.cumulative;
      assert.ok(c.lower <= truth && truth <= c.upper, `hour ${h}, ${when}: injected ${truth.toFixed(0)} outside [${c.lower.toFixed(0)}, ${c.upper.toFixed(0)}]`);
      estimates++;
    };
    await addChanges(plan.start, plan.start + HISTORY_POINTS * HOUR);
    const history = await service.ingestPoints('shop', 'revenue', Array.from({ length: HISTORY_POINTS }, (_, i) => point(i)));
    assert.deepEqual(history.opened, [], `hour ${h}: no incident in the history`);
    const open = new Set<string>();
    for (let r = 0; r < REPLAY_POINTS; r++) {
      const i = HISTORY_POINTS + r;
      await addChanges(plan.revenue.ts[i]! - HOUR, plan.revenue.ts[i]! + 1);
      const res = await service.ingestPoints('shop', 'revenue', [point(i)]);
      for (const inc of res.opened) {
        open.add(inc.id);
        check(inc, `opened at replay ${r}`);
      }
      for (const inc of res.resolved) {
        open.delete(inc.id);
        check(inc, `resolved at replay ${r}`);
      }
      if ((r + 1) % 4 === 0) for (const id of open) check(await service.analyseIncident(id), `re-estimated at replay ${r}`);
    }
    assert.ok(estimates >= 3, `hour ${h}: the incident opened, was re-estimated and resolved (${estimates} estimates)`);
    db.close();
  }
});
