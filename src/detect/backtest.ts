// Backtest: the same engine and rules as live detection, run offline over events in time order, optionally warmed
// first on a known-good period (models and per-entity history learn; nothing is raised while warming).
import type { StoredEvent } from '../event/stored-event.js';
import type { Anomaly } from './anomaly.js';
import { DetectionEngine, type DetectorConfig } from './engine.js';
import type { CompiledRule } from './rules-engine.js';

export interface BacktestInput {
  events: readonly StoredEvent[];
  train?: readonly StoredEvent[];
  rules?: readonly CompiledRule[];
  config?: Partial<DetectorConfig>;
  /** Called with every anomaly, in the order raised. */
  onAnomaly?: (a: Anomaly) => void;
  /** Called every `progressEvery` events: (phase, done, total). */
  onProgress?: (phase: 'train' | 'detect', done: number, total: number) => void;
  progressEvery?: number;
  /** Continue from this engine (e.g. restored from a snapshot) instead of a fresh one. */
  engine?: DetectionEngine;
}

export interface BacktestResult {
  engine: DetectionEngine;
  trained: number;
  processed: number;
  anomalies: number;
  trainMs: number;
  detectMs: number;
}

export function runBacktest(o: BacktestInput): BacktestResult {
  const engine = o.engine ?? new DetectionEngine({ rules: o.rules, config: o.config });
  if (o.engine && o.rules) engine.setRules(o.rules);
  const every = o.progressEvery ?? 10_000;
  let t0 = performance.now();
  const train = o.train ?? [];
  for (let i = 0; i < train.length; i++) {
    engine.learn(train[i]!);
    if (o.onProgress && (i + 1) % every === 0) o.onProgress('train', i + 1, train.length);
  }
  if (o.onProgress && train.length > 0) o.onProgress('train', train.length, train.length);
  const trainMs = performance.now() - t0;
  t0 = performance.now();
  let anomalies = 0;
  const events = o.events;
  for (let i = 0; i < events.length; i++) {
    const found = engine.process(events[i]!);
    if (found.length > 0) {
      anomalies += found.length;
      if (o.onAnomaly) for (const a of found) o.onAnomaly(a);
    }
    if (o.onProgress && (i + 1) % every === 0) o.onProgress('detect', i + 1, events.length);
  }
  if (o.onProgress) o.onProgress('detect', events.length, events.length);
  return { engine, trained: train.length, processed: events.length, anomalies, trainMs, detectMs: performance.now() - t0 };
}

/**
 * The same, over events that arrive in time-ordered batches (a warehouse scan): at most `maxEvents` are processed
 * (`truncated` says when more were there), and the caller's thread is given back between batches so a long backtest
 * inside a server never holds its event loop for more than one batch.
 */
export async function runBacktestBatches(o: {
  batches: AsyncIterable<readonly StoredEvent[]>;
  rules?: readonly CompiledRule[];
  config?: Partial<DetectorConfig>;
  onAnomaly?: (a: Anomaly) => void;
  maxEvents?: number;
}): Promise<{ processed: number; anomalies: number; truncated: boolean; detectMs: number }> {
  const engine = new DetectionEngine({ rules: o.rules, config: o.config });
  const max = o.maxEvents ?? Infinity;
  const t0 = performance.now();
  let processed = 0;
  let anomalies = 0;
  let truncated = false;
  for await (const batch of o.batches) {
    for (const e of batch) {
      if (processed >= max) {
        truncated = true;
        break;
      }
      processed++;
      const found = engine.process(e);
      anomalies += found.length;
      if (o.onAnomaly) for (const a of found) o.onAnomaly(a);
    }
    if (truncated) break;
    await new Promise((r) => setImmediate(r));
  }
  return { processed, anomalies, truncated, detectMs: performance.now() - t0 };
}
