// Reactions bench, against `causality up` children and a real local receiver in this process (signatures verified):
//  1. Outage + crash: N anomalies (one credential-stuffing device each) while the receiver is down; the node is
//     SIGKILLed midway and started again on the same data dir; then the receiver comes back. Every anomaly must be
//     delivered (duplicates only with the same delivery id), none lost, no dead letters.
//  2. Latency with a healthy receiver: one attacking device per tick; per anomaly, ingest request sent → anomaly stored
//     (`anomaly.createdAt`) → webhook received. "Delivery adds" = received − stored; its p99 is the bar (< 50 ms).
// Run alone: `node dist/bench/react.js` (prints the figures as JSON).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { verifyDelivery } from '../src/react/webhook.js';
import { ADMIN_KEY, BENCH_KEY, causalityEnv, promSum, ROOT, spawnNode } from './ingest.js';

const SECRET = 'bench-webhook-secret-0123456789';
const SOURCE = 'rule:credential-stuffing-device';

export interface ReactBenchReport {
  outage: {
    anomalies: number;
    /** Distinct delivery ids the receiver acknowledged. */
    delivered: number;
    /** Distinct anomalies among them. */
    anomaliesDelivered: number;
    lost: number;
    /** Requests acknowledged beyond the first per delivery id (each with the same id). */
    duplicates: number;
    deadLetters: number;
    badSignatures: number;
    restart: 'SIGKILL';
    /** Receiver down this long (s), the crash and restart included. */
    downSeconds: number;
    /** Attempts that reached nothing while it was down (both processes). */
    attemptsWhileDown: number;
    /** Receiver back → every delivery acknowledged (s). */
    drainSeconds: number;
  };
  latency: {
    anomalies: number;
    ingestToStoredP50Ms: number;
    ingestToStoredP99Ms: number;
    ingestToWebhookP50Ms: number;
    ingestToWebhookP99Ms: number;
    deliveryAddsP50Ms: number;
    deliveryAddsP99Ms: number;
  };
  bars: { noneLost: boolean; noDeadLetters: boolean; deliveryAddsP99Under50Ms: boolean };
}

interface Got {
  deliveryId: string;
  anomalyId: string;
  entityId: string;
  createdAt: number;
  at: number;
  verified: boolean;
}

/** A receiver on a fixed port that can go down (connections refused) and come back. */
async function receiver() {
  const got: Got[] = [];
  let server: Server | null = null;
  const handle = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(raw);
      got.push({
        deliveryId: String(req.headers['x-causality-delivery']),
        anomalyId: body.anomaly.id,
        entityId: body.anomaly.entityId,
        createdAt: Date.parse(body.anomaly.createdAt),
        at,
        verified: verifyDelivery(SECRET, { signature: req.headers['x-causality-signature'] as string, timestamp: req.headers['x-causality-timestamp'] as string }, raw),
      });
      res.writeHead(204).end();
    });
  };
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    async up() {
      server = createServer(handle);
      await new Promise<void>((r) => server!.listen(port, '127.0.0.1', () => r()));
    },
    async down() {
      if (server) await new Promise<void>((r) => server!.close(() => r()));
      server?.closeAllConnections();
      server = null;
    },
  };
}

function failedLogins(deviceId: string, t0: number) {
  return Array.from({ length: 12 }, (_, i) => ({ deviceId, userId: `victim-${i}`, type: 'userLogin', success: false, timestamp: t0 + i * 5_000 }));
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN;
};

async function startUp(dataDir: string, env: Record<string, string>) {
  const { child, match } = await spawnNode(
    [join(ROOT, 'bin/causality.js'), 'up', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1'],
    causalityEnv(env),
    /Causality listening on (http:\/\/[^\s]+)/,
  );
  return { child, url: match[1]! };
}

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`, { headers: { 'x-api-key': ADMIN_KEY } })).text();
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`react bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function send(url: string, events: unknown[]): Promise<void> {
  const r = await fetch(`${url}/v1/events/batch`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': BENCH_KEY }, body: JSON.stringify({ events }) });
  if (r.status !== 202) throw new Error(`ingest: HTTP ${r.status} ${await r.text()}`);
}

export async function runReactBench(o: { tmpDir?: string; anomalies?: number; latencySamples?: number; say?: (s: string) => void } = {}): Promise<ReactBenchReport> {
  const say = o.say ?? ((s: string) => process.stdout.write(`${s}\n`));
  const tmp = o.tmpDir ?? mkdtempSync(join(tmpdir(), 'causality-react-bench-'));
  const N = o.anomalies ?? 1000;
  const rx = await receiver();
  const env = {
    CAUSALITY_WEBHOOKS: JSON.stringify([{ id: 'bench', url: rx.url, secret: SECRET, filters: { sources: [SOURCE] } }]),
    WEBHOOK_BACKOFF_BASE: '100ms',
    WEBHOOK_BACKOFF_MAX: '2s',
    WEBHOOK_TIMEOUT: '2s',
    WEBHOOK_GROUP_WINDOW: '0',
    DETECTOR_SNAPSHOT_INTERVAL: '1s',
  };

  // ---- 1. outage + crash ----------------------------------------------------------------------------------------
  const dataDir = join(tmp, 'react-outage');
  let node = await startUp(dataDir, env);
  const t0 = Date.now() - 3_600_000;
  const devices = Array.from({ length: N }, (_, i) => `react-bench-${i}`);
  const downAt = Date.now();
  const perBatch = 50;
  let attemptsWhileDown = 0;
  const pending = async (url: string) => promSum(await metricsText(url), 'causality_webhook_queue_depth');
  for (let i = 0; i < N; i += perBatch) {
    await send(node.url, devices.slice(i, i + perBatch).flatMap((d) => failedLogins(d, t0)));
    if (i + perBatch >= N / 2 && i < N / 2) {
      // Midway: wait until some deliveries are stored and tried, then kill -9 and start again on the same data dir.
      await until('half the anomalies stored', async () => (await pending(node.url)) >= N / 2, 120_000);
      attemptsWhileDown += promSum(await metricsText(node.url), 'causality_webhook_attempts_total');
      node.child.proc.kill('SIGKILL');
      await node.child.stop();
      say('  react: node SIGKILLed midway; restarting on the same data dir');
      node = await startUp(dataDir, env);
    }
  }
  await until(`${N} deliveries pending`, async () => (await pending(node.url)) >= N, 180_000);
  await new Promise((r) => setTimeout(r, 2_000)); // a few more failed probes while down
  attemptsWhileDown += promSum(await metricsText(node.url), 'causality_webhook_attempts_total');
  await rx.up();
  const upAt = Date.now();
  await until('every delivery acknowledged', () => new Set(rx.got.map((g) => g.deliveryId)).size >= N, 300_000);
  const drainSeconds = (Date.now() - upAt) / 1000;
  await until('nothing pending', async () => (await pending(node.url)) === 0, 30_000);
  const text = await metricsText(node.url);
  const deadLetters = promSum(text, 'causality_webhook_dead_letters');
  await node.child.stop();
  const ids = new Set(rx.got.map((g) => g.deliveryId));
  const anomaliesDelivered = new Set(rx.got.map((g) => g.anomalyId)).size;
  const entities = new Set(rx.got.map((g) => g.entityId));
  const outage = {
    anomalies: N,
    delivered: ids.size,
    anomaliesDelivered,
    lost: devices.filter((d) => !entities.has(d)).length,
    duplicates: rx.got.length - ids.size,
    deadLetters,
    badSignatures: rx.got.filter((g) => !g.verified).length,
    restart: 'SIGKILL' as const,
    downSeconds: (upAt - downAt) / 1000,
    attemptsWhileDown,
    drainSeconds,
  };
  say(`  react outage: ${outage.anomaliesDelivered}/${N} anomalies delivered after ${outage.downSeconds.toFixed(1)} s down + kill -9; lost ${outage.lost}, duplicates ${outage.duplicates}, dead ${deadLetters}, bad signatures ${outage.badSignatures}; drained in ${drainSeconds.toFixed(2)} s`);

  // ---- 2. latency, healthy receiver ------------------------------------------------------------------------------
  rx.got.length = 0;
  const samples = o.latencySamples ?? 200;
  const live = await startUp(join(tmp, 'react-latency'), env);
  const sentAt = new Map<string, number>();
  const now0 = Date.now() - 120_000;
  for (let i = 0; i < samples; i++) {
    const d = `react-live-${i}`;
    sentAt.set(d, Date.now());
    await send(live.url, failedLogins(d, now0));
    await new Promise((r) => setTimeout(r, 50));
  }
  await until('every live anomaly delivered', () => rx.got.length >= samples, 60_000);
  await live.child.stop();
  await rx.down();
  const stored: number[] = [];
  const total: number[] = [];
  const adds: number[] = [];
  for (const g of rx.got) {
    const s = sentAt.get(g.entityId);
    if (s === undefined) continue;
    stored.push(g.createdAt - s);
    total.push(g.at - s);
    adds.push(g.at - g.createdAt);
  }
  const latency = {
    anomalies: adds.length,
    ingestToStoredP50Ms: quantile(stored, 0.5),
    ingestToStoredP99Ms: quantile(stored, 0.99),
    ingestToWebhookP50Ms: quantile(total, 0.5),
    ingestToWebhookP99Ms: quantile(total, 0.99),
    deliveryAddsP50Ms: quantile(adds, 0.5),
    deliveryAddsP99Ms: quantile(adds, 0.99),
  };
  say(`  react latency (${adds.length} anomalies): ingest → stored p50 ${latency.ingestToStoredP50Ms} / p99 ${latency.ingestToStoredP99Ms} ms; ingest → webhook p50 ${latency.ingestToWebhookP50Ms} / p99 ${latency.ingestToWebhookP99Ms} ms; delivery adds p50 ${latency.deliveryAddsP50Ms} / p99 ${latency.deliveryAddsP99Ms} ms`);
  if (!o.tmpDir) rmSync(tmp, { recursive: true, force: true });
  return {
    outage,
    latency,
    bars: { noneLost: outage.lost === 0 && outage.anomaliesDelivered === N, noDeadLetters: deadLetters === 0, deliveryAddsP99Under50Ms: latency.deliveryAddsP99Ms < 50 },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runReactBench()
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    });
}
