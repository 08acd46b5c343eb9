// Evaluates SQL-defined series on their intervals: the query returns (ts, value[, segment]) rows, which are stored
// (re-evaluated buckets overwrite) and fed to the monitor like pushed points. One tick at a time; stop() waits for it.
import { CausalService } from './service.js';
import { parseTime } from './changes.js';
import type { CausalStore, SeriesDefinition, StoredPoint } from './store.js';

export interface SeriesSchedulerOptions {
  store: CausalStore;
  runSql: (sql: string, appId?: string) => Promise<{ columns: string[]; rows: unknown[][] }>;
  /** Shared with the routes when given, so both use one service. */
  service?: CausalService;
  now?: () => number;
  /** How often definitions are checked for being due (default 5 s). */
  tickMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

/** Rows of (ts, value[, segment]) → points; columns found by name (ts|timestamp|time|bucket, value, segment) or position. */
export function rowsToPoints(columns: string[], rows: unknown[][]): StoredPoint[] {
  const find = (names: string[], fallback: number) => {
    const i = columns.findIndex((c) => names.includes(c.toLowerCase()));
    return i >= 0 ? i : fallback;
  };
  const ti = find(['ts', 'timestamp', 'time', 'bucket', 'hour', 'day'], 0);
  const vi = find(['value', 'v', 'metric'], ti === 0 ? 1 : 0);
  const si = columns.findIndex((c) => c.toLowerCase() === 'segment');
  const out: StoredPoint[] = [];
  for (const r of rows) {
    const t = r[ti];
    const ts = t instanceof Date ? t.getTime() : typeof t === 'bigint' ? Number(t) : typeof t === 'number' || typeof t === 'string' ? parseTime(t, 'ts') : NaN;
    const v = r[vi];
    const value = typeof v === 'bigint' ? Number(v) : typeof v === 'string' ? Number(v) : (v as number);
    if (!Number.isFinite(ts) || typeof value !== 'number' || !Number.isFinite(value)) continue;
    out.push({ ts, value, segment: si >= 0 && r[si] !== null && r[si] !== undefined ? String(r[si]) : '' });
  }
  return out;
}

export class SeriesScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly service: CausalService;
  private readonly now: () => number;

  constructor(private readonly opts: SeriesSchedulerOptions) {
    this.service = opts.service ?? new CausalService({ store: opts.store, now: opts.now });
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 5000);
    this.timer.unref();
    void this.tick();
  }

  /** Stops the timer and waits for a tick in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Evaluates every due definition once (also callable directly, e.g. from tests). */
  tick(): Promise<void> {
    if (this.running) return this.running;
    // Cleared in a later microtask, after the assignment, even when nothing was due (the body then never awaits).
    const p: Promise<void> = this.runDue().finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }

  private async runDue(): Promise<void> {
    for (const def of await this.opts.store.listDefinitions()) {
      if (def.lastRunAt !== null && def.lastRunAt + def.intervalMs > this.now()) continue;
      await this.evaluate(def);
    }
  }

  private async evaluate(def: SeriesDefinition): Promise<void> {
    const at = this.now();
    try {
      const r = await this.opts.runSql(def.sql, def.appId ?? undefined);
      const points = rowsToPoints(r.columns, r.rows);
      await this.service.ingestPoints(def.appId, def.name, points);
      await this.opts.store.markDefinitionRun(def.appId, def.name, at, null);
    } catch (e) {
      // One broken definition never stops the others; its error is visible in GET /v1/series.
      await this.opts.store.markDefinitionRun(def.appId, def.name, at, (e as Error).message.slice(0, 500));
      this.opts.log?.warn({ err: e, series: def.name }, 'series evaluation failed');
    }
  }
}
