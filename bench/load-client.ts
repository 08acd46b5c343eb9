// Load generator, run as its own child process (`node dist/bench/load-client.js '<json options>'`): keeps N requests
// in flight over a keep-alive node:http Agent against one URL, for a warm-up and then a timed window, and prints one
// JSON line with what it measured.
//
// Bodies are made before the clock starts: a pool of seed-000-shaped events (createVariedEvents) serialised once.
// Every request still carries fresh event ids, because the server dedupes them: the last 12 hex digits of each
// eventId UUID are overwritten in place with the request's sequence number (a byte patch, no JSON work).
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { createVariedEvents } from '../src/generate/traffic.js';

export interface LoadOptions {
  url: string; // full URL of the endpoint
  apiKey: string;
  /** 'batch': {"events":[…eventsPerRequest]}; 'single': one bare event. */
  shape: 'batch' | 'single';
  eventsPerRequest: number;
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
  /** How the answer says what was accepted: causality's batch/single answers, or the baseline's {"ok":true}. */
  expect: 'causality' | 'baseline';
  appId: string;
  seed: number;
  /** Distinct bodies in the pool (each is reused with new ids). */
  poolBodies: number;
}

export interface LoadResult {
  shape: string;
  concurrency: number;
  seconds: number;
  requestsOk: number;
  requestsFailed: number;
  /** Non-2xx answers by status, plus transport errors under "error". */
  failures: Record<string, number>;
  eventsAccepted: number;
  /** Events the server answered for but did not accept (duplicates, rejects). */
  eventsNotAccepted: number;
  eventsPerSecond: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  avgBodyBytes: number;
  poolEvents: number;
  warmup: { requestsOk: number; eventsAccepted: number };
}

interface Template {
  body: Buffer;
  /** Byte offsets of the 12-hex-digit tail of each eventId UUID. */
  idTails: number[];
  events: number;
}

const HEX = Buffer.from('0123456789abcdef');

function makeTemplates(o: LoadOptions): Template[] {
  const next = createVariedEvents({ appIds: [o.appId], devices: 2000, seed: o.seed });
  const out: Template[] = [];
  const now = Date.now();
  for (let t = 0; t < o.poolBodies; t++) {
    const events = Array.from({ length: o.eventsPerRequest }, (_, i) => next(now - (o.poolBodies - t) * 50 - i));
    const body = Buffer.from(JSON.stringify(o.shape === 'batch' ? { events } : events[0]));
    const idTails: number[] = [];
    const marker = Buffer.from('"eventId":"');
    for (let at = body.indexOf(marker); at >= 0; at = body.indexOf(marker, at + 1)) idTails.push(at + marker.length + 24);
    if (idTails.length !== o.eventsPerRequest) throw new Error(`template ${t}: found ${idTails.length} eventIds, expected ${o.eventsPerRequest}`);
    out.push({ body, idTails, events: o.eventsPerRequest });
  }
  return out;
}

/** Writes `seq` as 12 lower-case hex digits at each id tail. */
function patchIds(buf: Buffer, tails: number[], seq: number): void {
  for (const at of tails) {
    let v = seq;
    for (let i = 11; i >= 0; i--) {
      buf[at + i] = HEX[v % 16]!;
      v = Math.floor(v / 16);
    }
  }
}

const ACCEPTED_COUNT = /"accepted":(\d+)/;
const SINGLE_ACCEPTED = /"status":"accepted"/;

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const templates = makeTemplates(o);
  const maxLen = Math.max(...templates.map((t) => t.body.length));
  const avgBodyBytes = Math.round(templates.reduce((a, t) => a + t.body.length, 0) / templates.length);
  const url = new URL(o.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });

  let seq = 1;
  let phase: 'warmup' | 'timed' | 'done' = 'warmup';
  const warm = { requestsOk: 0, eventsAccepted: 0 };
  let requestsOk = 0;
  let requestsFailed = 0;
  let eventsAccepted = 0;
  let eventsNotAccepted = 0;
  const failures: Record<string, number> = {};
  const latencies: number[] = [];

  function send(body: Buffer): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': body.length, 'x-api-key': o.apiKey },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).subarray(0, 200).toString('latin1') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async function worker(): Promise<void> {
    const slot = Buffer.allocUnsafe(maxLen);
    while (phase !== 'done') {
      const s = seq++;
      const t = templates[s % templates.length]!;
      t.body.copy(slot);
      const body = slot.subarray(0, t.body.length);
      patchIds(body, t.idTails, s);
      const started = performance.now();
      let ok = false;
      let accepted = 0;
      let status = 'error';
      try {
        const r = await send(body);
        status = String(r.status);
        if (r.status >= 200 && r.status < 300) {
          ok = true;
          if (o.expect === 'baseline') accepted = r.text.startsWith('{"ok":true}') ? t.events : 0;
          else if (o.shape === 'batch') accepted = Number(ACCEPTED_COUNT.exec(r.text)?.[1] ?? 0);
          else accepted = SINGLE_ACCEPTED.test(r.text) ? 1 : 0;
        }
      } catch {
        ok = false;
      }
      // Throughput = answers completed inside the timed window.
      if (phase === 'timed') {
        latencies.push(performance.now() - started);
        if (ok) {
          requestsOk++;
          eventsAccepted += accepted;
          eventsNotAccepted += t.events - accepted;
        } else {
          requestsFailed++;
          failures[status] = (failures[status] ?? 0) + 1;
        }
      } else if (phase === 'warmup' && ok) {
        warm.requestsOk++;
        warm.eventsAccepted += accepted;
      }
      if (!ok && status === 'error') await new Promise((r) => setTimeout(r, 10)); // do not spin on a dead server
    }
  }

  const workers = Array.from({ length: o.concurrency }, worker);
  await new Promise((r) => setTimeout(r, o.warmupSeconds * 1000));
  phase = 'timed';
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  phase = 'done';
  const elapsed = (performance.now() - t0) / 1000;
  // Let in-flight requests finish (bounded), so the server is idle when the next phase starts.
  await Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 15_000))]);
  agent.destroy();

  latencies.sort((a, b) => a - b);
  const q = (p: number) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! * 100) / 100 : 0);
  return {
    shape: o.shape,
    concurrency: o.concurrency,
    seconds: Math.round(elapsed * 100) / 100,
    requestsOk,
    requestsFailed,
    failures,
    eventsAccepted,
    eventsNotAccepted,
    eventsPerSecond: Math.round(eventsAccepted / elapsed),
    requestsPerSecond: Math.round(requestsOk / elapsed),
    latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1) },
    avgBodyBytes,
    poolEvents: templates.length * o.eventsPerRequest,
    warmup: warm,
  };
}

// Entry point when run as a child process.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
  runLoad(opts).then(
    (r) => {
      process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: Error) => {
      process.stderr.write(`load-client: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
