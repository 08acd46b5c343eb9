// `npm run bench`: the spine's benchmarks, each against a baseline measured in the same run (see bench/README.md).
//   BENCH_SECONDS   seconds per timed ingest phase (default 10)
//   BENCH_EVENTS    events in the warehouse/query part (default 10,000,000)
//   BENCH_QUERY_RUNS timed runs per query after one warm-up (default 9, at least 7)
//   BENCH_INGEST_ROUNDS alternated baseline/causality batch phases (default 5; the ratio is of the sums)
//   BENCH_WARMUP_SECONDS untimed seconds before each timed ingest phase (default 3)
//   BENCH_BATCH_CONCURRENCY / BENCH_SINGLE_CONCURRENCY  comma lists of in-flight requests to try (default 32,64 / 128,256)
//   BENCH_KEEP=1    keep the temporary data directory
//   BENCH_WAREHOUSE_DIR  generate the warehouse part's events there once, reuse them on later runs
//   BENCH_NATS_URL  NATS server for the ingest batch phase on JetStream (default nats://127.0.0.1:4222; `off` skips it)
//   --only ingest,ingest-nats,detect,react,warehouse,demo (a comma list; default all; ingest-nats = only the embedded and
//          NATS batch phases, for the NATS/embedded ratio)
// Writes bench/results/latest.json, latest.md and <ISO date>.json; prints a summary table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { ROOT, runIngestBench, runIngestNatsBench, type IngestReport, type NatsIngestReport } from './ingest.js';
import { runWarehouseBench, type QueryRow, type WarehouseReport } from './warehouse.js';
import { benchDetector, type DetectBenchReport } from './detect.js';
import { runDetectLatencyBench, type DetectLatencyReport } from './detect-latency.js';
import { runReactBench, type ReactBenchReport } from './react.js';
import { runDemoBench, type DemoBenchReport } from './demo.js';

const say = (line: string) => process.stderr.write(`${line}\n`);

function intEnv(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return Math.floor(n);
}
function listEnv(name: string, def: number[]): number[] {
  const v = process.env[name];
  if (!v) return def;
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`${name} must be a comma list of positive integers, got ${v}`);
  return list;
}

type Part = 'ingest' | 'ingest-nats' | 'warehouse' | 'detect' | 'react' | 'demo';
const PARTS: readonly Part[] = ['ingest', 'ingest-nats', 'detect', 'react', 'warehouse', 'demo'];
/** `--only a,b`: the parts to run (null = all). */
function parseOnly(argv: string[]): Set<Part> | null {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return null;
  const v = (argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1]) ?? '';
  const parts = v.split(',').map((p) => p.trim());
  for (const p of parts) if (!PARTS.includes(p as Part)) throw new Error(`--only takes a comma list of ${PARTS.join(', ')}, got ${p}`);
  return new Set(parts as Part[]);
}

interface Bar {
  name: string;
  value: number;
  unit: string;
  target: string;
  pass: boolean;
}

interface Results {
  date: string;
  machine: { cpus: number; model: string; memoryGiB: number; node: string; platform: string; release: string; loadAvgAtStart: number[] };
  options: { seconds: number; events: number; queryRuns: number; only: string | null };
  bars: Bar[];
  notes: string[];
  ingest?: IngestReport;
  /** The batch phase on NATS JetStream beside the embedded one (from the ingest part, or --only ingest-nats). */
  ingestNats?: NatsIngestReport;
  warehouse?: WarehouseReport;
  detect?: { detector: DetectBenchReport; latency: DetectLatencyReport };
  react?: ReactBenchReport;
  demo?: DemoBenchReport;
}

const n = (v: number) => v.toLocaleString('en-US');

function markdown(r: Results): string {
  const L: string[] = [];
  L.push(`# Causality benchmarks — ${r.date}`, '');
  L.push(
    `Machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}, ${r.machine.platform} ${r.machine.release}; ` +
      `load average at start ${r.machine.loadAvgAtStart.map((x) => x.toFixed(2)).join(' / ')}. ` +
      `Load generator on the same machine. Options: BENCH_SECONDS=${r.options.seconds}, BENCH_EVENTS=${r.options.events}, query runs=${r.options.queryRuns}${r.options.only ? `, --only ${r.options.only}` : ''}.`,
    '',
  );
  L.push('## Bars', '', '| bar | value | target | |', '|---|---|---|---|');
  for (const b of r.bars) L.push(`| ${b.name} | ${b.value} ${b.unit} | ${b.target} | ${b.pass ? 'pass' : '**FAIL**'} |`);
  L.push('');
  if (r.notes.length) {
    L.push('## Notes', '');
    for (const x of r.notes) L.push(`- ${x}`);
    L.push('');
  }
  const nats = r.ingestNats;
  if (nats) {
    L.push('## Ingest on NATS JetStream (same run)', '');
    L.push(
      `Batch ×100 at concurrency ${nats.concurrency}, same bodies: embedded log ${n(nats.embedded.eventsPerSecond)} events/s (p99 ${nats.embedded.latencyMs.p99} ms), ` +
        `NATS JetStream (${nats.servers}, stream ${nats.stream}, deleted after) ${n(nats.nats.eventsPerSecond)} events/s (p99 ${nats.nats.latencyMs.p99} ms, failed ${nats.nats.requestsFailed}): ` +
        `ratio ${nats.ratio}. The sink (bound to its durable consumer) had committed the whole stream ${nats.sinkLagWaitMs} ms after the phase; ${n(nats.rowsInWarehouse)} events in the warehouse.`,
      '',
    );
    if (nats.rounds) {
      L.push(`Alternated rounds (embedded → NATS events/s): ${nats.rounds.map((x) => `${n(x.embeddedEventsPerSecond)} → ${n(x.natsEventsPerSecond)}`).join('; ')}; the ratio is of the sums (the figures above are the last round's).`, '');
    }
  }
  const ing = r.ingest;
  if (ing) {
    L.push('## Ingest (acked = durable)', '');
    L.push(
      `Disk on its own (before the load): write + fdatasync of 512 B p50 ${ing.disk.smallWriteP50Ms} ms (p95 ${ing.disk.smallWriteP95Ms}), of 1 MiB p50 ${ing.disk.mibWriteP50Ms} ms (p95 ${ing.disk.mibWriteP95Ms}).`,
      '',
    );
    L.push(`Concurrency: batch ${ing.concurrency.batch}, single ${ing.concurrency.single} (chosen to maximise the baseline; sweep: ${ing.concurrency.sweep.map((s) => `${s.shape} c=${s.concurrency} → ${n(s.eventsPerSecond)} ev/s`).join(', ') || 'none'}).`, '');
    L.push('| run | events/s | requests/s | p50 ms | p99 ms | failed requests | not accepted events | body bytes |', '|---|---|---|---|---|---|---|---|');
    const rowOf = (name: string, x: IngestReport['baseline']['batch']) =>
      `| ${name} | ${n(x.eventsPerSecond)} | ${n(x.requestsPerSecond)} | ${x.latencyMs.p50} | ${x.latencyMs.p99} | ${x.requestsFailed} | ${x.eventsNotAccepted} | ${n(x.avgBodyBytes)} |`;
    ing.batchRounds.forEach((r, k) => L.push(rowOf(`round ${k + 1}: baseline batch ×100`, r.baseline), rowOf(`round ${k + 1}: causality batch ×100`, r.causality)));
    L.push(rowOf('baseline single', ing.baseline.single), rowOf('causality single', ing.causality.single), '');
    L.push(
      `Ratio causality/baseline: batch **${ing.ratio.batch}** (of the summed rates over ${ing.batchRounds.length} alternated rounds; per round ${ing.batchRounds.map((r) => (r.causality.eventsPerSecond / Math.max(1, r.baseline.eventsPerSecond)).toFixed(3)).join(', ')}), single **${ing.ratio.single}**.`,
      '',
    );
    const f = ing.fsync;
    L.push(
      `fsync evidence (/metrics after the run): ${n(f.fsyncCount)} group commits (each one write + fdatasync) carried ${n(f.groupCommitRecordsSum)} log records; ` +
        `the log holds ${n(f.busEndOffset)} records; the server took ${n(f.ingestRequestsServer)} ingest requests and acknowledged ${n(f.eventsAcceptedServer)} events ` +
        `(the client counted ${n(f.requestsAckedClientTimed)} requests / ${n(f.eventsAcceptedClientTimed)} events inside the timed windows); ` +
        `mean ${f.groupCommitsCount ? n(Math.round(f.groupCommitRecordsSum / f.groupCommitsCount)) : 0} records and ${f.fsyncCount ? ((f.fsyncSecondsSum / f.fsyncCount) * 1000).toFixed(2) : 0} ms per fdatasync. ` +
        `Every ack fsynced (records on the log = records group-committed ≥ requests taken ≥ requests acked, events acked by the server ≥ by the client): **${f.everyAckFsynced ? 'yes' : 'NO'}**.`,
      '',
    );
    const w = ing.warehouse;
    L.push('### Warehouse bytes/event of the ingested traffic', '');
    L.push('| | rows | files | bytes | B/event |', '|---|---|---|---|---|');
    L.push(`| live files (what queries read) | ${n(w.rows)} | ${w.liveFiles} | ${n(w.liveBytes)} | ${w.bytesPerEventLive} |`);
    L.push(`| every *.parquet on disk | ${n(w.rows)} | ${w.filesOnDisk} | ${n(w.bytesOnDisk)} | ${w.bytesPerEventOnDisk} |`);
    if (w.afterFullCompaction) {
      const c = w.afterFullCompaction;
      L.push(`| after compact(2) until nothing is left | ${n(c.rows)} | ${c.liveFiles} | ${n(c.liveBytes)} | ${c.bytesPerEventLive} |`);
    }
    L.push('', `Sink caught up ${w.sinkLagWaitMs} ms after the load stopped.`, '');
  }
  const wh = r.warehouse;
  if (wh) {
    L.push(`## Warehouse and queries over ${n(wh.events)} events`, '');
    L.push(
      `${wh.apps.length} apps (${wh.apps.join(', ')}), ${n(wh.devices)} devices, ${wh.days} days (${wh.range.from} … ${wh.range.to}). ` +
        `Generation (ingest pipeline → SegmentedLog: ${n(wh.log.records)} records, ${n(wh.log.bytesPerEvent)} B/event on the log) ${wh.timings.generateSeconds.toFixed(1)} s ` +
        `(${n(Math.round(wh.events / wh.timings.generateSeconds))} ev/s); node start ${wh.timings.nodeStartSeconds.toFixed(1)} s; ` +
        (wh.reusedFrom
          ? `generated, sunk and compacted by an earlier run in ${wh.reusedFrom} (BENCH_WAREHOUSE_DIR): ${wh.bytes.liveFiles} files in ${wh.partitions} partitions. `
          : `sink to Parquet ${wh.timings.sinkSeconds.toFixed(1)} s (${n(Math.round(wh.events / wh.timings.sinkSeconds))} ev/s, ${wh.sinkFiles} files); ` +
            `compaction ${wh.timings.compactSeconds.toFixed(1)} s (${wh.compactions} partitions → ${wh.bytes.liveFiles} files in ${wh.partitions} partitions). `) +
        `Warehouse: ${n(wh.bytes.liveBytes)} bytes, **${wh.bytes.bytesPerEventLive} B/event**.`,
      '',
    );
    const table = (title: string, rows: QueryRow[]) => {
      L.push(`### ${title}`, '', '| query | causality p50 ms | p95 ms | raw DuckDB p50 ms | p95 ms | ratio (p50) | same answer |', '|---|---|---|---|---|---|---|');
      for (const q of rows) L.push(`| ${q.name} | ${q.causality.p50} | ${q.causality.p95} | ${q.raw.p50} | ${q.raw.p95} | ${q.ratio} | ${q.sameAnswer ? 'yes' : 'NO'} |`);
      L.push('');
    };
    table(`Metrics endpoints (HTTP, METRICS_CACHE_MS=0, app ${wh.range.app}, ${wh.range.from} … ${wh.range.to})`, wh.metricsEndpoints);
    table('SQL via POST /v1/query (admin key, all apps)', wh.sql);
    L.push('SQL run on both sides:', '');
    for (const q of [...wh.metricsEndpoints, ...wh.sql]) L.push(`- ${q.name}: \`${q.sql}\``);
    L.push('');
  }
  return L.join('\n');
}

async function main(): Promise<void> {
  const only = parseOnly(process.argv.slice(2));
  const seconds = intEnv('BENCH_SECONDS', 10);
  const events = intEnv('BENCH_EVENTS', 10_000_000);
  const queryRuns = Math.max(7, intEnv('BENCH_QUERY_RUNS', 9));
  const ingestRounds = Math.max(1, intEnv('BENCH_INGEST_ROUNDS', 5));
  // A fresh node needs about 2 s to reach its steady rate (JIT, heap growth): a throughput ceiling is measured after that.
  const warmupSeconds = Math.max(0, intEnv('BENCH_WARMUP_SECONDS', 3));
  const cpus = os.cpus();
  const results: Results = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus.length,
      model: cpus[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: os.platform(),
      release: os.release(),
      loadAvgAtStart: os.loadavg(),
    },
    options: { seconds, events, queryRuns, only: only ? [...only].join(',') : null },
    bars: [],
    notes: [
      'The load generator, the server and the sink share this machine\'s cores; other work on the machine makes numbers noisy (compare the ratios, which are measured in the same run).',
    ],
  };
  if (results.machine.loadAvgAtStart[0]! > 1) {
    results.notes.push(
      `1-minute load average at start: ${results.machine.loadAvgAtStart[0]!.toFixed(2)} on ${cpus.length} cores (this includes the tsc build \`npm run bench\` does first; much above 1 means other work was running).`,
    );
  }
  const tmpDir = await mkdtemp(join(os.tmpdir(), 'causality-bench-'));
  say(`causality bench: ${cpus.length} × ${results.machine.model}, node ${process.version}; data in ${tmpDir}`);
  const natsUrl = process.env.BENCH_NATS_URL === 'off' ? null : process.env.BENCH_NATS_URL || 'nats://127.0.0.1:4222';
  const natsBar = (x: NatsIngestReport): Bar => ({
    name: 'ingest batch ×100: NATS JetStream / embedded events/s (same run)',
    value: x.ratio,
    unit: '×',
    target: '≥ 0.50',
    pass: x.ratio >= 0.5 && x.nats.requestsFailed === 0,
  });
  try {
    if (only?.has('ingest-nats') && !only.has('ingest')) {
      if (!natsUrl) throw new Error('--only ingest-nats needs a NATS server (BENCH_NATS_URL is off)');
      say(`\n== ingest, embedded vs NATS JetStream (${seconds} s per phase) ==`);
      const x = await runIngestNatsBench({
        seconds,
        warmupSeconds,
        tmpDir,
        batchConcurrency: listEnv('BENCH_BATCH_CONCURRENCY', [32, 64]),
        rounds: ingestRounds,
        singleConcurrency: [],
        say,
        natsUrl,
      });
      results.ingestNats = x;
      results.bars.push(natsBar(x));
    }
    if (!only || only.has('ingest')) {
      say(`\n== ingest (${warmupSeconds} s warm-up + ${seconds} s per phase, ${ingestRounds} rounds) ==`);
      const ing = await runIngestBench({
        seconds,
        warmupSeconds,
        tmpDir,
        batchConcurrency: listEnv('BENCH_BATCH_CONCURRENCY', [32, 64]),
        rounds: ingestRounds,
        singleConcurrency: listEnv('BENCH_SINGLE_CONCURRENCY', [128, 256]),
        say,
        natsUrl,
      });
      results.ingest = ing;
      if (ing.nats) {
        results.ingestNats = ing.nats;
        results.bars.push(natsBar(ing.nats));
      }
      if (ing.natsError) results.notes.push(`The NATS JetStream batch phase failed: ${ing.natsError}`);
      results.bars.push(
        { name: 'ingest batch ×100: causality / baseline events/s', value: ing.ratio.batch, unit: '×', target: '≥ 0.50', pass: ing.ratio.batch >= 0.5 },
        { name: 'every ack fsynced (log records = group-committed records ≥ acked requests)', value: ing.fsync.fsyncCount, unit: 'fsyncs', target: 'all acks fsynced', pass: ing.fsync.everyAckFsynced },
        { name: 'warehouse bytes/event, ingested traffic (live files)', value: ing.warehouse.bytesPerEventLive, unit: 'B', target: '≤ 40', pass: ing.warehouse.bytesPerEventLive <= 40 },
      );
      const failed = ing.batchRounds.reduce((a, r) => a + r.causality.requestsFailed, 0) + ing.causality.single.requestsFailed;
      if (failed > 0) {
        results.notes.push(`Causality answered ${failed} requests with an error during the timed runs (see failures in latest.json).`);
      }
      await rm(join(tmpDir, 'ingest'), { recursive: true, force: true });
    }
    if (!only || only.has('detect')) {
      say('\n== detection ==');
      const detector = await benchDetector();
      say(`  detector on one core: ${n(detector.eventsPerSecond)} events/s (models only ${n(detector.modelsOnlyEventsPerSecond)})`);
      const latency = await runDetectLatencyBench({ tmpDir, say });
      results.detect = { detector, latency };
      results.bars.push({ name: 'detector events/s on one core (models + shipped rules)', value: detector.eventsPerSecond, unit: 'ev/s', target: '≥ 100,000', pass: detector.eventsPerSecond >= 100_000 });
      results.bars.push({ name: `ingest → stored anomaly p99 at ${n(latency.rate)} ev/s (${latency.anomaliesStored} anomalies)`, value: latency.p99Ms, unit: 'ms', target: '< 500', pass: latency.anomaliesStored > 0 && latency.p99Ms < 500 });
      results.notes.push(`Ingest → anomaly p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (interpolated within the detector's latency histogram buckets).`);
    }
    if (!only || only.has('react')) {
      say('\n== reactions (webhooks) ==');
      const react = await runReactBench({ tmpDir: join(tmpDir, 'react'), say });
      results.react = react;
      const o = react.outage;
      results.bars.push({ name: `${n(o.anomalies)} anomalies through a receiver outage + kill -9: lost`, value: o.lost, unit: '', target: '0 (dead letters 0, duplicates only same id)', pass: react.bars.noneLost && react.bars.noDeadLetters });
      results.bars.push({ name: 'webhook delivery adds, p99 (healthy receiver)', value: react.latency.deliveryAddsP99Ms, unit: 'ms', target: '< 50', pass: react.bars.deliveryAddsP99Under50Ms });
      results.notes.push(`Reactions: ${n(o.delivered)} delivered, ${o.duplicates} duplicate requests (same delivery id), ${o.deadLetters} dead letters, ${o.badSignatures} bad signatures; receiver down ${o.downSeconds.toFixed(1)} s, drained ${o.drainSeconds.toFixed(1)} s after it came back. Ingest → webhook p50 ${react.latency.ingestToWebhookP50Ms} ms, p99 ${react.latency.ingestToWebhookP99Ms} ms.`);
    }
    if (!only || only.has('warehouse')) {
      say(`\n== warehouse + queries (${events.toLocaleString('en-US')} events) ==`);
      const wh = await runWarehouseBench({ events, days: 30, devices: 20_000, runs: queryRuns, tmpDir, say, uiRuns: 5, ...(process.env.BENCH_WAREHOUSE_DIR ? { reuseDir: process.env.BENCH_WAREHOUSE_DIR } : {}) });
      results.warehouse = wh;
      for (const q of wh.metricsEndpoints) {
        results.bars.push({ name: `${q.name} over 30 days, ${n(wh.events)} events`, value: q.causality.p50, unit: 'ms p50', target: '< 300', pass: q.causality.p50 < 300 });
      }
      results.bars.push({ name: `warehouse bytes/event, ${n(wh.events)} generated events`, value: wh.bytes.bytesPerEventLive, unit: 'B', target: '≤ 40', pass: wh.bytes.bytesPerEventLive <= 40 });
      if (wh.pages) {
        const worst = wh.pages.reduce((a, b) => (b.p95 > a.p95 ? b : a));
        results.bars.push({ name: `web UI: slowest page load p95 (${worst.name}), ${n(wh.events)} events, metrics cache off`, value: worst.p95, unit: 'ms', target: '< 1000', pass: worst.p95 < 1000 });
      }
      const genSink = wh.timings.generateSeconds + wh.timings.sinkSeconds;
      if (genSink > 480) results.notes.push(`Generation + sink took ${genSink.toFixed(0)} s for ${n(wh.events)} events (over the ~8 minute budget).`);
      if (wh.events < 10_000_000) results.notes.push(`The query part used ${n(wh.events)} events, not 10M (BENCH_EVENTS).`);
      for (const q of [...wh.metricsEndpoints, ...wh.sql]) if (!q.sameAnswer) results.notes.push(`"${q.name}": Causality and raw DuckDB answered differently.`);
    }
    if (!only || only.has('demo')) {
      say('\n== demo (`causality demo`, 3 runs from the spawn) ==');
      const demo = await runDemoBench({ runs: 3, log: say });
      results.demo = demo;
      results.bars.push({ name: 'causality demo: first anomaly after start, worst of 3 runs', value: demo.firstAnomalyS.max ?? -1, unit: 's', target: '≤ 60', pass: demo.bars.firstAnomalyUnder60s });
      results.notes.push(`Demo: first anomaly ${demo.runs.map((r) => r.firstAnomalyS ?? '-').join(' / ')} s after the spawn; revenue crash with ranked cause and cost ${demo.runs.map((r) => r.crashS ?? '-').join(' / ')} s (bench/results/demo-*.json).`);
      results.bars.push({ name: 'causality demo: revenue crash detected, deploy ranked first, cost interval holds the injected loss (worst of 3)', value: demo.crashS.max ?? -1, unit: 's', target: 'every run', pass: demo.bars.deployFirstEveryRun && demo.bars.costHoldsInjectedEveryRun });
    }
  } finally {
    if (process.env.BENCH_KEEP === '1') say(`kept ${tmpDir}`);
    else await rm(tmpDir, { recursive: true, force: true });
  }

  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(dir, 'latest.json'), json);
  writeFileSync(join(dir, `${results.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`), json);
  writeFileSync(join(dir, 'latest.md'), markdown(results));

  const t = new Table({ head: ['bar', 'value', 'target', ''], style: { head: [], border: [] } });
  for (const b of results.bars) t.push([b.name, `${b.value} ${b.unit}`, b.target, b.pass ? 'pass' : 'FAIL']);
  process.stdout.write(`\n${t.toString()}\n`);
  if (results.ingest) {
    const i = results.ingest;
    const t2 = new Table({ head: ['ingest', 'baseline ev/s', 'causality ev/s', 'ratio'], style: { head: [], border: [] } });
    const mean = (side: 'baseline' | 'causality') => Math.round(i.batchRounds.reduce((a, r) => a + r[side].eventsPerSecond, 0) / i.batchRounds.length);
    t2.push([`batch ×100 (mean of ${i.batchRounds.length} rounds)`, n(mean('baseline')), n(mean('causality')), i.ratio.batch]);
    t2.push(['single', n(i.baseline.single.eventsPerSecond), n(i.causality.single.eventsPerSecond), i.ratio.single]);
    if (i.nats) t2.push(['batch ×100 on NATS (vs causality embedded)', n(i.nats.embedded.eventsPerSecond), n(i.nats.nats.eventsPerSecond), i.nats.ratio]);
    process.stdout.write(`${t2.toString()}\n`);
  }
  if (results.warehouse) {
    const t3 = new Table({ head: ['query', 'causality p50 ms', 'p95 ms', 'raw p50 ms', 'ratio'], style: { head: [], border: [] } });
    for (const q of [...results.warehouse.metricsEndpoints, ...results.warehouse.sql]) t3.push([q.name, q.causality.p50, q.causality.p95, q.raw.p50, q.ratio]);
    for (const p of results.warehouse.pages ?? []) t3.push([`UI page ${p.name}`, p.p50, p.p95, '-', '-']);
    process.stdout.write(`${t3.toString()}\n`);
  }
  for (const note of results.notes) process.stdout.write(`note: ${note}\n`);
  process.stdout.write(`results: ${join('bench', 'results', 'latest.md')}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
