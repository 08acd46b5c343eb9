// Ingest benchmark: events/s acknowledged (= durable) by Causality vs. a bare node:http + JSON.parse baseline, same
// bodies, same load client, same concurrency; then the fsync evidence from /metrics and the warehouse bytes/event of
// the traffic that was just ingested.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JetStreamBus } from '../src/bus/jetstream-bus.js';
import { loadConfig } from '../src/config.js';
import { startNode } from '../src/node.js';
import { createLogger } from '../src/obs/logger.js';
import { parsePartFile, resolveLiveFiles, type PartFile } from '../src/warehouse/layout.js';
import type { LoadOptions, LoadResult } from './load-client.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
export const ROOT = resolve(HERE, '../..');

export const BENCH_APP = 'bench';
export const BENCH_KEY = 'benchkey_12345678';
export const ADMIN_KEY = 'admin_12345678';

export interface IngestOptions {
  seconds: number;
  warmupSeconds: number;
  tmpDir: string;
  batchConcurrency: number[];
  singleConcurrency: number[];
  say: (line: string) => void;
  /** Alternated baseline/causality batch phases (BENCH_INGEST_ROUNDS). */
  rounds: number;
  /** Also run the batch phase with the node on this NATS JetStream server (CAUSALITY_BUS), right after the embedded one. */
  natsUrl?: string | null;
}

/** The batch phase with the bus on NATS JetStream beside the embedded one, same bodies, same concurrency, same run. */
export interface NatsIngestReport {
  servers: string;
  /** A stream made for this run, deleted afterwards. */
  stream: string;
  concurrency: number;
  embedded: LoadResult;
  nats: LoadResult;
  /** NATS / embedded events/s. */
  ratio: number;
  /** After the phase: how long until the sink (bound to its durable consumer) had committed the whole stream. */
  sinkLagWaitMs: number;
  /** Events the warehouse holds after it, read back by SQL (the sink consumed the stream). */
  rowsInWarehouse: number;
  /** --only ingest-nats alternates the two; `ratio` is then of the summed rates (the other fields are of the last round). */
  rounds?: Array<{ embeddedEventsPerSecond: number; natsEventsPerSecond: number }>;
}

export interface WarehouseBytes {
  rows: number;
  filesOnDisk: number;
  bytesOnDisk: number;
  liveFiles: number;
  liveBytes: number;
  /** All *.parquet under warehouse/ (may include files superseded by a compaction, kept 60 s for running queries). */
  bytesPerEventOnDisk: number;
  /** Only the files queries read (layout.resolveLiveFiles). */
  bytesPerEventLive: number;
}

export interface DiskFsync {
  /** write(n bytes) at the end of a file + fdatasync, as the log's group commit does; ms. */
  smallWriteP50Ms: number;
  smallWriteP95Ms: number;
  mibWriteP50Ms: number;
  mibWriteP95Ms: number;
}

export interface IngestReport {
  /** What this disk's write+fdatasync costs on its own, measured before the load (context for the durable figures). */
  disk: DiskFsync;
  concurrency: { batch: number; single: number; sweep: Array<{ shape: string; concurrency: number; eventsPerSecond: number }> };
  /** The last batch round's (see batchRounds) and the single-event phase. */
  baseline: { batch: LoadResult; single: LoadResult };
  causality: { batch: LoadResult; single: LoadResult };
  /** Batch phases alternated baseline → causality; ratio.batch is of the summed rates over the rounds. */
  batchRounds: Array<{ baseline: LoadResult; causality: LoadResult }>;
  ratio: { batch: number; single: number };
  fsync: {
    fsyncCount: number;
    fsyncSecondsSum: number;
    /** Log records written by group commits (one per ingest request since the log holds ingest records). */
    groupCommitRecordsSum: number;
    groupCommitsCount: number;
    /** The log's end offset (it started empty): every record on it, to compare with the group-committed ones. */
    busEndOffset: number;
    /** Ingest requests the server processed (causality_ingest_batch_events_count), warm-ups included. */
    ingestRequestsServer: number;
    eventsAcceptedServer: number;
    requestsAckedClientTimed: number;
    eventsAcceptedClientTimed: number;
    everyAckFsynced: boolean;
  };
  warehouse: WarehouseBytes & { sinkLagWaitMs: number; afterFullCompaction: WarehouseBytes | null };
  /** Null when no NATS server was given (or its phase failed: see natsError). */
  nats: NatsIngestReport | null;
  natsError?: string;
}

// ---- child processes ------------------------------------------------------------------------------------------

interface Child {
  proc: ChildProcess;
  stop(): Promise<number | null>;
}

/** Spawns `node args…` and resolves once a stdout line matches `ready` (rejects on exit or timeout). */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv, ready: RegExp, timeoutMs = 60_000): Promise<{ child: Child; match: RegExpMatchArray }> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const child: Child = {
      proc,
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
        if (code === 'timeout') {
          proc.kill('SIGKILL');
          return exited;
        }
        return code;
      },
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`timed out waiting for ${args.join(' ')}\n${out}\n${err}`));
    }, timeoutMs);
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      out += d;
      if (out.length > 1_000_000) out = out.slice(-100_000);
      const m = out.match(ready);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        resolvePromise({ child, match: m });
      }
    });
    proc.stderr!.on('data', (d: string) => {
      err += d;
      if (err.length > 100_000) err = err.slice(-50_000);
    });
    proc.once('exit', (code) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`${args.join(' ')} exited with ${code}\n${out.slice(-4000)}\n${err.slice(-4000)}`));
      }
    });
  });
}

export async function runClient(o: LoadOptions): Promise<LoadResult> {
  const script = join(HERE, 'load-client.js');
  const { child, match } = await spawnNode([script, JSON.stringify(o)], process.env, /RESULT (\{.*\})\n/, (o.seconds + o.warmupSeconds + 120) * 1000);
  await child.stop();
  return JSON.parse(match[1]!) as LoadResult;
}

/** SIGKILL: the bench's own nodes between rounds (nothing to keep, and no shutdown work to compete with the next phase). */
async function killNow(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = new Promise((r) => child.proc.once('exit', r));
  child.proc.kill('SIGKILL');
  await exited;
}

async function startBaseline(): Promise<{ child: Child; url: string }> {
  const { child, match } = await spawnNode([join(HERE, 'baseline-server.js')], process.env, /LISTENING (\d+)\n/);
  return { child, url: `http://127.0.0.1:${match[1]}` };
}

export function causalityEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CAUSALITY_')) delete env[k];
  return {
    ...env,
    CAUSALITY_APP_KEYS: `${BENCH_APP}:${BENCH_KEY}`,
    CAUSALITY_ADMIN_KEY: ADMIN_KEY,
    RATE_LIMIT_PER_MINUTE: '0',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

async function startCausality(dataDir: string, env: Record<string, string> = {}): Promise<{ child: Child; url: string }> {
  const { child, match } = await spawnNode(
    [join(ROOT, 'bin/causality.js'), 'up', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1'],
    causalityEnv(env),
    /Causality listening on (http:\/\/[^\s]+)/,
  );
  return { child, url: match[1]! };
}

// ---- measurements ---------------------------------------------------------------------------------------------

/** Sums a Prometheus text metric over all its label sets. */
export function promSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

async function getJson(url: string, key?: string): Promise<any> {
  const r = await fetch(url, { headers: key ? { 'x-api-key': key } : {} });
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

export async function sqlCount(url: string, sql: string): Promise<number> {
  const r = await fetch(`${url}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY },
    body: JSON.stringify({ sql }),
  });
  const body = (await r.json()) as { rows?: unknown[][] };
  if (!r.ok) throw new Error(`POST /v1/query: HTTP ${r.status} ${JSON.stringify(body)}`);
  return Number(body.rows?.[0]?.[0] ?? 0);
}

/** Every *.parquet under `root` with its size, keys relative to root ('events/app_id=…/date=…/….parquet'). */
export async function listParquet(root: string): Promise<Array<{ key: string; bytes: number }>> {
  const out: Array<{ key: string; bytes: number }> = [];
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() || !e.name.endsWith('.parquet')) continue;
    const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path;
    const p = join(parent, e.name);
    const s = await stat(p).catch(() => null);
    if (s) out.push({ key: relative(root, p).split(sep).join('/'), bytes: s.size });
  }
  return out;
}

export function bytesReport(all: Array<{ key: string; bytes: number }>, live: Array<{ bytes: number }>, rows: number): WarehouseBytes {
  const bytesOnDisk = all.reduce((a, f) => a + f.bytes, 0);
  const liveBytes = live.reduce((a, f) => a + f.bytes, 0);
  const per = (b: number) => (rows > 0 ? Math.round((b / rows) * 100) / 100 : 0);
  return {
    rows,
    filesOnDisk: all.length,
    bytesOnDisk,
    liveFiles: live.length,
    liveBytes,
    bytesPerEventOnDisk: per(bytesOnDisk),
    bytesPerEventLive: per(liveBytes),
  };
}

async function waitSinkLagZero(url: string, timeoutMs: number, detectorToo = false): Promise<{ committedOffset: number; waitedMs: number }> {
  const started = Date.now();
  for (;;) {
    const h = (await getJson(`${url}/healthz`)) as { sink: { committedOffset: number; lag: number }; detector: { lag: number } | null };
    const detectorLag = detectorToo ? h.detector?.lag ?? 0 : 0;
    if (h.sink.lag === 0 && detectorLag === 0) return { committedOffset: h.sink.committedOffset, waitedMs: Date.now() - started };
    if (Date.now() - started > timeoutMs) throw new Error(`sink lag still ${h.sink.lag}, detector lag ${detectorLag}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Times `runs` appends of `bytes` each followed by fdatasync (the durable-ack floor of this disk). */
export async function measureFsync(dir: string, runs = 30): Promise<DiskFsync> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'fsync-probe.log');
  const fh = await open(path, 'w');
  let position = 0;
  const probe = async (bytes: number) => {
    const buf = Buffer.alloc(bytes, 0x61);
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await fh.write(buf, 0, bytes, position);
      position += bytes;
      await fh.datasync();
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    const q = (p: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]! * 100) / 100;
    return [q(0.5), q(0.95)] as const;
  };
  try {
    const [s50, s95] = await probe(512);
    const [m50, m95] = await probe(1 << 20);
    return { smallWriteP50Ms: s50, smallWriteP95Ms: s95, mibWriteP50Ms: m50, mibWriteP95Ms: m95 };
  } finally {
    await fh.close();
    await rm(path, { force: true });
  }
}

// ---- the benchmark --------------------------------------------------------------------------------------------

function loadOptions(
  o: Pick<IngestOptions, 'warmupSeconds'>,
  shape: 'batch' | 'single',
  url: string,
  expect: 'causality' | 'baseline',
  concurrency: number,
  seconds: number,
  seed: number,
): LoadOptions {
  return {
    url: `${url}${shape === 'batch' ? '/v1/events/batch' : '/v1/events/ingest'}`,
    apiKey: BENCH_KEY,
    shape,
    eventsPerRequest: shape === 'batch' ? 100 : 1,
    concurrency,
    warmupSeconds: o.warmupSeconds,
    seconds,
    expect,
    appId: BENCH_APP,
    seed,
    poolBodies: shape === 'batch' ? 1000 : 20_000,
  };
}

const fmt = (r: LoadResult) =>
  `${r.eventsPerSecond.toLocaleString('en-US')} ev/s (${r.requestsPerSecond.toLocaleString('en-US')} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, failed ${r.requestsFailed})`;

/**
 * The batch phase with the node's bus on NATS JetStream (a stream of its own, deleted afterwards), compared with the
 * embedded batch phase of the same run. The sink must then commit the whole stream and the warehouse hold its events.
 */
export async function runNatsBatchPhase(
  o: Pick<IngestOptions, 'seconds' | 'warmupSeconds' | 'tmpDir' | 'say'>,
  natsUrl: string,
  concurrency: number,
  embedded: LoadResult,
): Promise<NatsIngestReport> {
  const stream = `CAUSALITY_BENCH_${process.pid}_${Date.now()}`;
  const dataDir = join(o.tmpDir, 'ingest-nats');
  const server = await startCausality(dataDir, { CAUSALITY_BUS: natsUrl, CAUSALITY_BUS_STREAM: stream });
  try {
    const nats = await runClient(loadOptions(o, 'batch', server.url, 'causality', concurrency, o.seconds, 1));
    o.say(`  causality batch  c=${concurrency} on NATS JetStream: ${fmt(nats)}`);
    const lag = await waitSinkLagZero(server.url, 300_000);
    const rowsInWarehouse = await sqlCount(server.url, 'SELECT count(*) FROM events');
    o.say(`  (NATS: sink caught up ${lag.waitedMs} ms after the phase; ${rowsInWarehouse.toLocaleString('en-US')} events in the warehouse)`);
    const ratio = embedded.eventsPerSecond > 0 ? Math.round((nats.eventsPerSecond / embedded.eventsPerSecond) * 1000) / 1000 : 0;
    return { servers: natsUrl, stream, concurrency, embedded, nats, ratio, sinkLagWaitMs: lag.waitedMs, rowsInWarehouse };
  } finally {
    await server.child.stop();
    await JetStreamBus.deleteStream(natsUrl.split(','), stream).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * `--only ingest-nats`: embedded, NATS, embedded, NATS batch phases (alternated, so drifting machine load weighs on
 * both); the ratio is of the summed rates. No baseline, single-event or compaction phases.
 */
export async function runIngestNatsBench(o: IngestOptions & { natsUrl: string }): Promise<NatsIngestReport> {
  const concurrency = Math.max(...o.batchConcurrency);
  const rounds: NonNullable<NatsIngestReport['rounds']> = [];
  let last: NatsIngestReport | null = null;
  for (let round = 0; round < o.rounds; round++) {
    const dataDir = join(o.tmpDir, 'ingest');
    const server = await startCausality(dataDir);
    let embedded: LoadResult;
    try {
      embedded = await runClient(loadOptions(o, 'batch', server.url, 'causality', concurrency, o.seconds, 1));
      o.say(`  causality batch  c=${concurrency} embedded: ${fmt(embedded)}`);
    } finally {
      await server.child.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
    last = await runNatsBatchPhase(o, o.natsUrl, concurrency, embedded);
    rounds.push({ embeddedEventsPerSecond: embedded.eventsPerSecond, natsEventsPerSecond: last.nats.eventsPerSecond });
  }
  const sum = (k: 'embeddedEventsPerSecond' | 'natsEventsPerSecond') => rounds.reduce((a, r) => a + r[k], 0);
  const ratio = sum('embeddedEventsPerSecond') > 0 ? Math.round((sum('natsEventsPerSecond') / sum('embeddedEventsPerSecond')) * 1000) / 1000 : 0;
  return { ...last!, ratio, rounds };
}

export async function runIngestBench(o: IngestOptions): Promise<IngestReport> {
  const base = (shape: 'batch' | 'single', url: string, expect: 'causality' | 'baseline', concurrency: number, seconds: number, seed: number) =>
    loadOptions(o, shape, url, expect, concurrency, seconds, seed);

  const disk = await measureFsync(o.tmpDir);
  o.say(`  disk: write+fdatasync 512 B p50 ${disk.smallWriteP50Ms} ms (p95 ${disk.smallWriteP95Ms}), 1 MiB p50 ${disk.mibWriteP50Ms} ms (p95 ${disk.mibWriteP95Ms})`);

  // 1. Pick the concurrency that maximises the baseline. 2. Batch phases alternated with the baseline's (rounds), so a
  // machine whose speed drifts (a shared host) weighs on both sides; the ratio is of the summed rates.
  const sweep: IngestReport['concurrency']['sweep'] = [];
  const baseline = await startBaseline();
  const dataDir = join(o.tmpDir, 'ingest');
  let server: { child: Child; url: string } | null = null;
  const batchRounds: IngestReport['batchRounds'] = [];
  let baseSingle!: LoadResult;
  let batchConc: number;
  let singleConc: number;
  let cSingle: LoadResult;
  let metricsText: string;
  let lag: { committedOffset: number; waitedMs: number };
  let rows: number;
  let all: Array<{ key: string; bytes: number }>;
  try {
    const pick = async (shape: 'batch' | 'single', candidates: number[]) => {
      if (candidates.length === 1) return candidates[0]!;
      let best = candidates[0]!;
      let bestRate = -1;
      for (const c of candidates) {
        const r = await runClient(base(shape, baseline.url, 'baseline', c, Math.min(3, o.seconds), 1));
        sweep.push({ shape, concurrency: c, eventsPerSecond: r.eventsPerSecond });
        o.say(`  sweep baseline ${shape} c=${c}: ${fmt(r)}`);
        if (r.eventsPerSecond > bestRate) {
          bestRate = r.eventsPerSecond;
          best = c;
        }
      }
      return best;
    };
    batchConc = await pick('batch', o.batchConcurrency);
    singleConc = await pick('single', o.singleConcurrency);
    // Each round's node is fresh and is killed after its phase (no shutdown flush, no catch-up left running), so every
    // phase, baseline or causality, starts on a quiet machine. The last round's node stays for the single-event phase.
    for (let round = 1; round <= o.rounds; round++) {
      const last = round === o.rounds;
      const b = await runClient(base('batch', baseline.url, 'baseline', batchConc, o.seconds, 1));
      o.say(`  round ${round}: baseline  batch  c=${batchConc}: ${fmt(b)}`);
      if (last) {
        baseSingle = await runClient(base('single', baseline.url, 'baseline', singleConc, o.seconds, 2));
        o.say(`  baseline  single c=${singleConc}: ${fmt(baseSingle)}`);
      }
      await rm(dataDir, { recursive: true, force: true });
      server = await startCausality(dataDir);
      const c = await runClient(base('batch', server.url, 'causality', batchConc, o.seconds, 1));
      o.say(`  round ${round}: causality batch  c=${batchConc}: ${fmt(c)}`);
      batchRounds.push({ baseline: b, causality: c });
      if (!last) {
        await killNow(server.child);
        server = null;
      }
    }
    if (!server) throw new Error('no rounds');
    // Let the sink and the detector catch up with the batch phase (they deferred during it), so the single-event
    // phase starts from the same quiet state as the baseline's.
    const caughtUp = await waitSinkLagZero(server.url, 600_000, true);
    o.say(`  (sink and detector caught up ${caughtUp.waitedMs} ms after the batch phase)`);
    cSingle = await runClient(base('single', server.url, 'causality', singleConc, o.seconds, 2));
    o.say(`  causality single c=${singleConc}: ${fmt(cSingle)}`);
    metricsText = await (await fetch(`${server.url}/metrics`)).text();
    lag = await waitSinkLagZero(server.url, 300_000);
    rows = await sqlCount(server.url, 'SELECT count(*) FROM events');
    all = await listParquet(join(dataDir, 'warehouse'));
  } finally {
    await baseline.child.stop();
    await server?.child.stop();
  }
  const baseBatch = batchRounds.at(-1)!.baseline;
  const cBatch = batchRounds.at(-1)!.causality;

  let nats: NatsIngestReport | null = null;
  let natsError: string | undefined;
  if (o.natsUrl) {
    try {
      nats = await runNatsBatchPhase(o, o.natsUrl, batchConc, cBatch);
    } catch (err) {
      natsError = (err as Error).message;
      o.say(`  NATS phase failed: ${natsError}`);
    }
  }

  const parsed = all.map((f) => parsePartFile(f.key, f.bytes)).filter((f): f is PartFile => f !== null);
  const { live } = resolveLiveFiles(parsed, lag.committedOffset);
  const wh = bytesReport(all, live, rows);
  o.say(`  warehouse: ${rows.toLocaleString('en-US')} rows, ${wh.bytesPerEventLive} B/event live (${wh.liveFiles} files), ${wh.bytesPerEventOnDisk} B/event on disk (${wh.filesOnDisk} files)`);

  // 3. The same data once compaction has merged every partition (what the warehouse converges to).
  let compacted: WarehouseBytes | null = null;
  {
    const { config } = loadConfig({ dataDir, port: 0, host: '127.0.0.1' }, causalityEnv({ COMPACT_MIN_FILES: '1000000' }) as Record<string, string>);
    const node = await startNode(config, { log: createLogger('silent'), listen: false });
    try {
      while ((await node.warehouse.compact(2)) > 0);
      const liveFiles = await node.warehouse.liveFiles();
      const r = await node.queries.run('SELECT count(*) FROM events', { appId: null, rowLimit: 10, timeoutMs: 60_000 });
      compacted = bytesReport(await listParquet(join(dataDir, 'warehouse')), liveFiles, Number(r.rows[0]?.[0] ?? 0));
      o.say(`  after full compaction: ${compacted.bytesPerEventLive} B/event (${compacted.liveFiles} files)`);
    } finally {
      await node.close();
    }
  }

  const fsyncCount = promSum(metricsText, 'causality_bus_fsync_seconds_count');
  const groupCommitRecordsSum = promSum(metricsText, 'causality_bus_group_commit_records_sum');
  const eventsAcceptedServer = promSum(metricsText, 'causality_events_accepted_total');
  // The server's counters are the last round's node's: compare them with that node's phases.
  const eventsAcceptedClientTimed = cBatch.eventsAccepted + cSingle.eventsAccepted;
  const requestsAckedClientTimed = cBatch.requestsOk + cSingle.requestsOk;
  const summed = (side: 'baseline' | 'causality') => batchRounds.reduce((a, r) => a + r[side].eventsPerSecond, 0);
  const busEndOffset = promSum(metricsText, 'causality_bus_end_offset');
  const ingestRequestsServer = promSum(metricsText, 'causality_ingest_batch_events_count');
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 1000) / 1000 : 0);
  return {
    disk,
    concurrency: { batch: batchConc, single: singleConc, sweep },
    baseline: { batch: baseBatch, single: baseSingle },
    causality: { batch: cBatch, single: cSingle },
    batchRounds,
    ratio: { batch: ratio(summed('causality'), summed('baseline')), single: ratio(cSingle.eventsPerSecond, baseSingle.eventsPerSecond) },
    fsync: {
      fsyncCount,
      fsyncSecondsSum: Math.round(promSum(metricsText, 'causality_bus_fsync_seconds_sum') * 1000) / 1000,
      groupCommitRecordsSum,
      groupCommitsCount: promSum(metricsText, 'causality_bus_group_commit_records_count'),
      busEndOffset,
      ingestRequestsServer,
      eventsAcceptedServer,
      requestsAckedClientTimed,
      eventsAcceptedClientTimed,
      // Every record on the log went through a fsynced group commit, every request the server took (no bench request
      // is all duplicates) appended at least one, and the client's acks are a subset of the server's.
      everyAckFsynced:
        fsyncCount > 0 &&
        groupCommitRecordsSum === busEndOffset &&
        groupCommitRecordsSum >= ingestRequestsServer &&
        ingestRequestsServer >= requestsAckedClientTimed &&
        eventsAcceptedServer >= eventsAcceptedClientTimed,
    },
    warehouse: { ...wh, sinkLagWaitMs: lag.waitedMs, afterFullCompaction: compacted },
    nats,
    ...(natsError ? { natsError } : {}),
  };
}
