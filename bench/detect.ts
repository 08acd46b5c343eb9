// Detector throughput on one core: the engine (models + the shipped rules) over generated traffic, single thread.
// Events are generated and normalised before the clock starts; a warm-up pass runs first so the JIT has settled.
// Run alone: `node dist/bench/detect.js` (also called from bench/run.ts).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DetectionEngine } from '../src/detect/engine.js';
import { normalizeFileEvent } from '../src/detect/event-file.js';
import { loadRulesDirStrict } from '../src/detect/rules-loader.js';
import type { StoredEvent } from '../src/event/stored-event.js';
import { generateAll } from '../src/generate/simulate.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface DetectBenchReport {
  /** Events per second through `process()` (models + rules), one core. */
  eventsPerSecond: number;
  /** The same without rules (models only). */
  modelsOnlyEventsPerSecond: number;
  events: number;
  anomalies: number;
  rules: number;
  heapUsedMb: number;
  snapshotBytes: number;
  snapshotMs: number;
  restoreMs: number;
}

export async function benchDetector(o: { users?: number; hours?: number; seed?: number } = {}): Promise<DetectBenchReport> {
  const start = Date.UTC(2026, 10, 2, 8, 0, 0);
  const { events: raw } = generateAll({ seed: o.seed ?? 5150, users: o.users ?? 3000, start, durationMs: (o.hours ?? 18) * 3_600_000, anomalyRate: 0.02 });
  const events: StoredEvent[] = [];
  for (const e of raw) {
    const r = normalizeFileEvent(e);
    if (r.ok) events.push(r.event);
  }
  const rules = loadRulesDirStrict(join(ROOT, 'rules'));
  const pass = (withRules: boolean) => {
    const engine = new DetectionEngine({ rules: withRules ? rules : [] });
    let anomalies = 0;
    const t0 = performance.now();
    for (let i = 0; i < events.length; i++) anomalies += engine.process(events[i]!).length;
    return { ms: performance.now() - t0, anomalies, engine };
  };
  pass(true); // warm-up
  const best = (withRules: boolean) => {
    const a = pass(withRules);
    const b = pass(withRules);
    return a.ms <= b.ms ? a : b;
  };
  const full = best(true);
  const models = best(false);
  let t0 = performance.now();
  const snap = full.engine.snapshot();
  const snapshotMs = performance.now() - t0;
  t0 = performance.now();
  DetectionEngine.fromSnapshot(snap, { rules });
  const restoreMs = performance.now() - t0;
  return {
    eventsPerSecond: Math.round(events.length / (full.ms / 1000)),
    modelsOnlyEventsPerSecond: Math.round(events.length / (models.ms / 1000)),
    events: events.length,
    anomalies: full.anomalies,
    rules: rules.length,
    heapUsedMb: Math.round(process.memoryUsage().heapUsed / 1e6),
    snapshotBytes: snap.length,
    snapshotMs: Math.round(snapshotMs),
    restoreMs: Math.round(restoreMs),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchDetector();
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
