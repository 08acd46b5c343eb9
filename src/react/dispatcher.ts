// The dispatcher: `workers` async loops that each claim one due delivery at a time (atomically, with a lease),
// POST it signed with a timeout, and record the outcome: delivered; retried after exponential backoff with jitter (or
// the receiver's Retry-After); or, after `maxAttempts`, a dead letter the API lists and replays. At-least-once: a
// crash after sending and before recording re-sends the same delivery id, which the receiver dedupes on.
import { BroadcastChannel } from 'node:worker_threads';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AnomalyStore } from '../detect/anomaly-store.js';
import type { Logger } from '../obs/logger.js';
import { VERSION } from '../version.js';
import { renderAlert } from './alert-format.js';
import type { ClaimedDelivery, OutboxStore } from './outbox-store.js';
import { backoffMs, parseRetryAfter, signDelivery, type BackoffPolicy } from './webhook.js';

/** The detector posts here after a transaction wrote deliveries; dispatchers in this process wake up at once. */
export const OUTBOX_CHANNEL = 'causality:outbox';

export function createReactMetrics(registry: Registry) {
  return {
    attempts: new Counter({
      name: 'causality_webhook_attempts_total',
      help: 'Webhook HTTP attempts by endpoint and outcome (delivered, http_error, rate_limited, timeout, network_error)',
      labelNames: ['endpoint', 'outcome'],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'causality_webhook_deliveries_total',
      help: 'Webhook deliveries finished, by endpoint and outcome (delivered, dead)',
      labelNames: ['endpoint', 'outcome'],
      registers: [registry],
    }),
    attemptSeconds: new Histogram({
      name: 'causality_webhook_attempt_seconds',
      help: 'One webhook HTTP attempt, request to response (or timeout)',
      labelNames: ['endpoint'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'causality_webhook_delivery_latency_seconds',
      help: 'Anomaly stored (outbox row written) → its webhook acknowledged, retries included',
      labelNames: ['endpoint'],
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600],
      registers: [registry],
    }),
  };
}
export type ReactMetrics = ReturnType<typeof createReactMetrics>;

/** Queue depth and dead letters, read from the outbox at scrape time (shared by every dispatcher on the store). */
export function registerOutboxGauges(registry: Registry, store: OutboxStore, now: () => number = Date.now): void {
  let cached: { at: number; stats: Awaited<ReturnType<OutboxStore['stats']>> } | null = null;
  const stats = async () => {
    if (!cached || now() - cached.at > 500) cached = { at: now(), stats: await store.stats() };
    return cached.stats;
  };
  new Gauge({ name: 'causality_webhook_queue_depth', help: 'Webhook deliveries pending (due, backing off or in flight)', registers: [registry], async collect() { this.set((await stats()).pending); } });
  new Gauge({ name: 'causality_webhook_dead_letters', help: 'Webhook deliveries in the dead-letter list', registers: [registry], async collect() { this.set((await stats()).dead); } });
  new Gauge({
    name: 'causality_webhook_oldest_pending_seconds',
    help: 'Age of the oldest pending webhook delivery (0 when none)',
    registers: [registry],
    async collect() {
      const o = (await stats()).oldestPendingAt;
      this.set(o === null ? 0 : (now() - o) / 1000);
    },
  });
}

export interface DispatcherOptions {
  store: OutboxStore;
  /** Where the anomaly a delivery carries is read from. */
  anomalies: Pick<AnomalyStore, 'get'>;
  workers: number;
  timeoutMs: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  log: Logger;
  metrics?: ReactMetrics;
  /** Longest Retry-After honoured (longer answers are capped). Default 1 h. */
  maxRetryAfterMs?: number;
  /** Idle re-check interval (other processes' deliveries, due retries). Default 1 s. */
  pollMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

type Outcome = 'delivered' | 'http_error' | 'rate_limited' | 'timeout' | 'network_error';

export class Dispatcher {
  private running = false;
  private loops: Promise<void>[] = [];
  private wakeIdle: (() => void) | null = null;
  private wakeSignal: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private channel: BroadcastChannel | null = null;
  private readonly inFlight = new Set<ClaimedDelivery>();
  /** Claims under way (a network store answers later): stop() lets them settle before it aborts the sends. */
  private readonly claiming = new Set<Promise<ClaimedDelivery | null>>();

  constructor(private readonly o: DispatcherOptions) {
    this.resetWake();
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private resetWake(): void {
    this.wakeSignal = new Promise<void>((r) => (this.wakeIdle = r));
  }

  /** Something was enqueued or replayed: idle workers look now. */
  wake(): void {
    const w = this.wakeIdle;
    this.resetWake();
    w?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.channel = new BroadcastChannel(OUTBOX_CHANNEL);
    this.channel.onmessage = () => this.wake();
    this.channel.unref();
    for (let i = 0; i < this.o.workers; i++) this.loops.push(this.work());
  }

  /** Stops claiming, aborts in-flight sends and gives their claims back (they go out after the restart). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.channel?.close();
    this.wake();
    // A claim still under way could otherwise take back a delivery an aborted send just gave back.
    await Promise.allSettled([...this.claiming]);
    this.abort.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async work(): Promise<void> {
    const { store, log } = this.o;
    const leaseMs = this.o.timeoutMs + 5_000;
    while (this.running) {
      let claimed: ClaimedDelivery | null = null;
      const claim = store.claim(this.now(), leaseMs);
      this.claiming.add(claim);
      try {
        claimed = await claim;
      } catch (err) {
        log.error({ err }, 'webhooks: claiming a delivery failed; retrying');
      } finally {
        this.claiming.delete(claim);
      }
      if (claimed && !this.running) {
        // Stopped while claiming: give it back unsent.
        await store.release(claimed).catch((err: Error) => log.error({ err, deliveryId: claimed.id }, 'webhooks: giving a claim back failed (its lease will expire)'));
        break;
      }
      if (!claimed) {
        await this.idle();
        continue;
      }
      this.inFlight.add(claimed);
      try {
        await this.deliver(claimed);
      } catch (err) {
        log.error({ err, deliveryId: claimed.id, anomalyId: claimed.anomalyId }, 'webhooks: recording a delivery outcome failed (the lease will expire and it is retried)');
      } finally {
        this.inFlight.delete(claimed);
      }
    }
  }

  /** Waits for a wake-up, the next due delivery, or the poll interval, whichever is first. */
  private async idle(): Promise<void> {
    const signal = this.wakeSignal;
    let waitMs = this.o.pollMs ?? 1000;
    try {
      const due = await this.o.store.nextDueAt();
      if (due !== null) waitMs = Math.max(1, Math.min(waitMs, due - this.now()));
    } catch {
      /* the poll interval then */
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([signal, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  private async deliver(c: ClaimedDelivery): Promise<void> {
    const { store, log, metrics } = this.o;
    const dlog = log.child({ deliveryId: c.id, anomalyId: c.anomalyId, endpointId: c.endpointId, attempt: c.attempts });
    const endpoint = await store.getEndpoint(c.endpointId);
    const anomaly = await this.o.anomalies.get(c.anomalyId);
    if (!endpoint || !anomaly) {
      // Deleted meanwhile (endpoint) or never stored (cannot happen: same transaction): nothing to send.
      await store.markFailed(c, { now: this.now(), status: null, error: endpoint ? 'anomaly not found' : 'endpoint deleted', nextAttemptAt: this.now(), dead: true, endpointBlockedUntil: 0 });
      dlog.warn(endpoint ? 'webhooks: anomaly not found; dead-lettered' : 'webhooks: endpoint deleted; dropped');
      return;
    }
    // The anomaly as the detector raised it: status and updatedAt change later, and a delivery's body must not.
    const { status: _status, updatedAt: _updatedAt, ...raised } = anomaly;
    const body = renderAlert(endpoint.format, c, raised);
    const timestamp = Math.floor(this.now() / 1000);
    const started = performance.now();
    let status: number | null = null;
    let retryAfterMs: number | null = null;
    let outcome: Outcome;
    let error = '';
    try {
      const res = await (this.o.fetch ?? fetch)(endpoint.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.o.timeoutMs), this.abort.signal]),
        headers: {
          'content-type': 'application/json',
          'user-agent': `causality-webhooks/${VERSION}`,
          'x-causality-delivery': c.id,
          'x-causality-event': 'anomaly',
          'x-causality-attempt': String(c.attempts),
          'x-causality-timestamp': String(timestamp),
          'x-causality-signature': signDelivery(endpoint.secret, timestamp, body),
        },
        body,
      });
      status = res.status;
      // Read (and bound) the answer so the connection is reusable; its content is not used.
      await res.arrayBuffer().catch(() => undefined);
      if (status >= 200 && status < 300) outcome = 'delivered';
      else {
        outcome = status === 429 ? 'rate_limited' : 'http_error';
        if (status === 429 || status === 503) retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), this.now());
        error = `HTTP ${status}`;
      }
    } catch (err) {
      if (this.abort.signal.aborted) {
        // Stopping: give the claim back; the restart sends it again with the same delivery id.
        await store.release(c);
        dlog.info('webhooks: stopped mid-send; released for the next start');
        return;
      }
      const e = err as Error & { cause?: { code?: string; message?: string } };
      outcome = e.name === 'TimeoutError' ? 'timeout' : 'network_error';
      error = outcome === 'timeout' ? `no answer within ${this.o.timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    }
    const seconds = (performance.now() - started) / 1000;
    const now = this.now();
    metrics?.attempts.inc({ endpoint: endpoint.id, outcome });
    metrics?.attemptSeconds.observe({ endpoint: endpoint.id }, seconds);
    if (outcome === 'delivered') {
      const kept = await store.markDelivered(c, now, status!);
      metrics?.deliveries.inc({ endpoint: endpoint.id, outcome: 'delivered' });
      metrics?.deliveryLatency.observe({ endpoint: endpoint.id }, Math.max(0, now - c.createdAt) / 1000);
      dlog.info({ status, ms: Math.round(seconds * 1000), anomalies: c.anomalyCount, lostClaim: !kept || undefined }, 'webhooks: delivered');
      return;
    }
    const retryAfter = retryAfterMs === null ? null : Math.min(retryAfterMs, this.o.maxRetryAfterMs ?? 3_600_000);
    const dead = c.attempts >= this.o.maxAttempts || status === 410;
    const ownWait = backoffMs(c.attempts, this.o.backoff);
    const endpointWait = retryAfter ?? backoffMs((await store.endpointFailures(endpoint.id)) + 1, this.o.backoff);
    await store.markFailed(c, { now, status, error, dead, nextAttemptAt: now + Math.max(ownWait, retryAfter ?? 0), endpointBlockedUntil: now + endpointWait });
    if (dead) {
      metrics?.deliveries.inc({ endpoint: endpoint.id, outcome: 'dead' });
      dlog.warn({ status, error, attempts: c.attempts }, 'webhooks: giving up; moved to the dead letters');
    } else {
      dlog.info({ status, error, retryInMs: Math.max(ownWait, retryAfter ?? 0), retryAfterMs: retryAfter ?? undefined }, 'webhooks: attempt failed; will retry');
    }
  }
}
