// Ingest → stored anomaly latency, embedded: `causality up` (child) takes behavioural traffic with attacks mixed in
// from `causality load --random` at a fixed rate; the detector's own histogram (server receipt of the triggering
// event → anomaly committed to the state store) gives p50/p99, interpolated within its buckets.
import { join } from 'node:path';
import { ADMIN_KEY, BENCH_APP, BENCH_KEY, causalityEnv, ROOT, spawnNode } from './ingest.js';

export interface DetectLatencyReport {
  rate: number;
  seconds: number;
  eventsSent: number;
  anomaliesStored: number;
  p50Ms: number;
  p99Ms: number;
  /** Bucket upper bounds (s) and cumulative counts, as read. */
  buckets: Array<[number, number]>;
}

/** Quantile from cumulative Prometheus buckets, linear within the bucket. */
export function bucketQuantile(buckets: Array<[number, number]>, q: number): number {
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

export async function runDetectLatencyBench(o: { tmpDir: string; rate?: number; seconds?: number; say: (s: string) => void }): Promise<DetectLatencyReport> {
  const rate = o.rate ?? 5000;
  // Longer than the detector's snapshot interval (60 s by default), so the tail includes a snapshot.
  const seconds = o.seconds ?? Number(process.env.BENCH_DETECT_SECONDS ?? 75);
  const dataDir = join(o.tmpDir, 'detect-latency');
  const { child: server, match } = await spawnNode(
    [join(ROOT, 'bin/causality.js'), 'up', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1'],
    causalityEnv(),
    /Causality listening on (http:\/\/[^\s]+)/,
  );
  const url = match[1]!;
  try {
    const { child: load, match: done } = await spawnNode(
      [join(ROOT, 'bin/causality.js'), 'load', '--url', url, '--key', BENCH_KEY, '--app', BENCH_APP, '--rate', String(rate), '--duration', String(seconds), '--random', '--anomaly-rate', '0.05', '--batch-size', '50'],
      causalityEnv(),
      /sent ([\d,]+)/i,
      (seconds + 120) * 1000,
    );
    await load.stop();
    // Let the detector finish what is on the log.
    await new Promise((r) => setTimeout(r, 3000));
    const text = await (await fetch(`${url}/metrics`, { headers: { 'x-api-key': ADMIN_KEY } })).text();
    const buckets: Array<[number, number]> = [];
    for (const m of text.matchAll(/^causality_detector_latency_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
      buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
    }
    const stored = buckets[buckets.length - 1]?.[1] ?? 0;
    const report = {
      rate,
      seconds,
      eventsSent: Number(done[1]!.replace(/,/g, '')),
      anomaliesStored: stored,
      p50Ms: Math.round(bucketQuantile(buckets, 0.5) * 1000),
      p99Ms: Math.round(bucketQuantile(buckets, 0.99) * 1000),
      buckets,
    };
    o.say(`  ingest → anomaly at ${rate} ev/s: ${stored} anomalies, p50 ${report.p50Ms} ms, p99 ${report.p99Ms} ms`);
    return report;
  } finally {
    await server.stop();
  }
}
