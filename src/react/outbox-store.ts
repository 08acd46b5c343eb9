// The durable outbox: webhook endpoints, and one delivery row per (alert, endpoint) written in the SAME transaction
// that stores the anomaly (SqliteAnomalyStore calls `enqueueWithin` inside its insert), so a crash can never keep an
// anomaly and lose its deliveries. Dispatchers claim rows atomically (one UPDATE … WHERE id = (SELECT …) RETURNING,
// with a lease: a crashed dispatcher's claims expire and are claimed again), and an endpoint that keeps failing is
// held back as a whole (one probe at a time) so an outage does not burn every delivery's attempts.
// A PostgreSQL implementation (scale-out) keeps the same interface with `FOR UPDATE SKIP LOCKED`.
import { randomUUID } from 'node:crypto';
import type { Anomaly } from '../detect/anomaly.js';
import { migrate, type SqliteDb } from '../state/sqlite.js';
import { groupKeyOf, matchesFilters, type AlertFormat, type WebhookEndpoint, type WebhookFilters } from './webhook.js';

export type DeliveryStatus = 'pending' | 'delivered' | 'dead' | 'cancelled';
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'dead', 'cancelled'];

export interface Delivery {
  /** Stable across retries: the receiver's idempotency key (X-Causality-Delivery). */
  id: string;
  endpointId: string;
  /** The first anomaly of the alert (its body's `anomaly`). */
  anomalyId: string;
  appId: string;
  status: DeliveryStatus;
  /** HTTP attempts made so far (a claim counts: a crash mid-send is an attempt). */
  attempts: number;
  anomalyCount: number;
  anomalyIds: string[];
  lastTs: number;
  nextAttemptAt: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
  deliveredAt: number | null;
}

/** A delivery a dispatcher holds until `claimedUntil`; completions must present `token`. */
export interface ClaimedDelivery extends Delivery {
  token: string;
  claimedUntil: number;
}

export interface FailureOutcome {
  now: number;
  status: number | null;
  error: string;
  /** When this delivery may be tried again (ignored when `dead`). */
  nextAttemptAt: number;
  dead: boolean;
  /** Hold every delivery of the endpoint until then (endpoint down, Retry-After). */
  endpointBlockedUntil: number;
}

export interface DeliveryFilter {
  endpointId?: string;
  status?: DeliveryStatus;
  /** An app key's scope. */
  appId?: string;
}

export interface OutboxStats {
  pending: number;
  dead: number;
  delivered: number;
  /** Oldest pending delivery's creation time (epoch ms), null when none. */
  oldestPendingAt: number | null;
}

export interface OutboxStore {
  listEndpoints(): Promise<WebhookEndpoint[]>;
  getEndpoint(id: string): Promise<WebhookEndpoint | null>;
  /** Creates or replaces an endpoint. */
  putEndpoint(e: WebhookEndpoint): Promise<void>;
  /** Deletes it and cancels its pending deliveries and dead letters. */
  deleteEndpoint(id: string): Promise<boolean>;
  /** Makes the config file's endpoints the `config`-origin ones (added, updated, removed). */
  syncConfigEndpoints(endpoints: WebhookEndpoint[]): Promise<void>;
  /** Enqueues deliveries for new anomalies (its own transaction; the anomaly store uses `enqueueWithin` instead). */
  enqueue(fresh: readonly Anomaly[]): Promise<EnqueueResult>;
  /** Atomically takes the next due delivery of an enabled, not held-back endpoint, for `leaseMs`. */
  claim(now: number, leaseMs: number): Promise<ClaimedDelivery | null>;
  /** False when the claim was lost (lease expired and someone else holds it). */
  markDelivered(c: ClaimedDelivery, now: number, status: number): Promise<boolean>;
  markFailed(c: ClaimedDelivery, o: FailureOutcome): Promise<boolean>;
  /** Gives a claim back (graceful stop mid-send; the attempt still counts: the receiver may have seen it). */
  release(c: ClaimedDelivery): Promise<void>;
  /** Consecutive failed attempts against an endpoint (its own backoff while it is down). */
  endpointFailures(endpointId: string): Promise<number>;
  /** Earliest time something may become claimable (null: nothing pending). */
  nextDueAt(): Promise<number | null>;
  getDelivery(id: string): Promise<Delivery | null>;
  listDeliveries(f: DeliveryFilter, page?: { limit?: number; cursor?: string | null }): Promise<{ items: Delivery[]; nextCursor: string | null }>;
  /** Dead letters back to pending with fresh attempts and the SAME delivery id. Returns how many. */
  replay(f: { deliveryId?: string; endpointId?: string; appId?: string }, now: number): Promise<number>;
  stats(): Promise<OutboxStats>;
  /** Deletes delivered/cancelled rows older than `beforeMs` and expired group windows. */
  prune(beforeMs: number, now: number): Promise<number>;
}

export interface EnqueueResult {
  /** New delivery rows. */
  created: Array<{ deliveryId: string; anomalyId: string; endpointId: string; nextAttemptAt: number }>;
  /** Anomalies folded into an alert not yet sent (its count went up). */
  grouped: Array<{ deliveryId: string; anomalyId: string; endpointId: string }>;
}

export const MAX_IDS_PER_ALERT = 50;

const MIGRATIONS = [
  `CREATE TABLE webhook_endpoints (
     id TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     secret TEXT NOT NULL,
     format TEXT NOT NULL,
     filters TEXT NOT NULL,
     enabled INTEGER NOT NULL,
     description TEXT,
     origin TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE webhook_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT INTO webhook_meta (name, value) VALUES ('endpoints_version', 0);
   CREATE TABLE webhook_deliveries (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     endpoint_id TEXT NOT NULL,
     anomaly_id TEXT NOT NULL,
     app_id TEXT NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     anomaly_count INTEGER NOT NULL,
     anomaly_ids TEXT NOT NULL,
     last_ts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     claimed_until INTEGER,
     claim_token TEXT,
     last_status INTEGER,
     last_error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     delivered_at INTEGER
   );
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, seq);
   CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status, seq);
   CREATE TABLE webhook_groups (group_key TEXT PRIMARY KEY, delivery_id TEXT NOT NULL, window_until INTEGER NOT NULL);
   CREATE TABLE webhook_endpoint_health (endpoint_id TEXT PRIMARY KEY, failures INTEGER NOT NULL, blocked_until INTEGER NOT NULL);`,
  `ALTER TABLE webhook_endpoints ADD COLUMN max_per_minute INTEGER;`,
];

export function migrateReactStore(db: SqliteDb): void {
  migrate(db, 'react', MIGRATIONS);
}

export interface EndpointRow {
  id: string;
  url: string;
  secret: string;
  format: AlertFormat;
  filters: string;
  enabled: number;
  description: string | null;
  max_per_minute: number | null;
  origin: 'config' | 'api';
  created_at: number;
  updated_at: number;
}

export interface DeliveryRow {
  seq: number;
  id: string;
  endpoint_id: string;
  anomaly_id: string;
  app_id: string;
  status: DeliveryStatus;
  attempts: number;
  anomaly_count: number;
  anomaly_ids: string;
  last_ts: number;
  next_attempt_at: number;
  claimed_until: number | null;
  claim_token: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export const endpointFromRow = (r: EndpointRow): WebhookEndpoint => ({
  id: r.id,
  url: r.url,
  secret: r.secret,
  format: r.format,
  filters: JSON.parse(r.filters) as WebhookFilters,
  enabled: r.enabled === 1,
  description: r.description,
  maxPerMinute: r.max_per_minute,
  origin: r.origin,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const deliveryFromRow = (r: DeliveryRow): Delivery => ({
  id: r.id,
  endpointId: r.endpoint_id,
  anomalyId: r.anomaly_id,
  appId: r.app_id,
  status: r.status,
  attempts: r.attempts,
  anomalyCount: r.anomaly_count,
  anomalyIds: JSON.parse(r.anomaly_ids) as string[],
  lastTs: r.last_ts,
  nextAttemptAt: r.next_attempt_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  deliveredAt: r.delivered_at,
});

export class CursorError extends Error {}

/** A config-file endpoint already stored as it is (syncing it again would change nothing). */
export const sameConfigEndpoint = (old: WebhookEndpoint, e: WebhookEndpoint): boolean =>
  old.origin === 'config' && old.url === e.url && old.secret === e.secret && old.format === e.format && old.enabled === e.enabled &&
  old.description === e.description && old.maxPerMinute === e.maxPerMinute && JSON.stringify(old.filters) === JSON.stringify(e.filters);

/** The listDeliveries cursor (a delivery's seq) of both stores. */
export const encodeDeliveryCursor = (seq: number): string => Buffer.from(String(seq)).toString('base64url');
export function decodeDeliveryCursor(cursor: string): number {
  const seq = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isInteger(seq)) throw new CursorError('not a cursor this API gave');
  return seq;
}

export class SqliteOutboxStore implements OutboxStore {
  private endpointsVersion = -1;
  private enabledEndpoints: WebhookEndpoint[] = [];
  private readonly s;

  private readonly groupWindowMs: number;

  /**
   * @param opts.groupWindowMs alerts per endpoint + entity + source: the first goes at once, the rest of the window
   *   is folded into one alert sent when the window ends (0: every anomaly is its own alert). Given by the process
   *   that owns the configuration (saved in the store); other connections (the detector's) read it from there.
   */
  constructor(
    private readonly db: SqliteDb,
    private readonly opts: { groupWindowMs?: number; now?: () => number } = {},
  ) {
    migrateReactStore(db);
    if (opts.groupWindowMs !== undefined) {
      db.prepare(`INSERT INTO webhook_meta (name, value) VALUES ('group_window_ms', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`).run(opts.groupWindowMs);
    }
    this.groupWindowMs =
      opts.groupWindowMs ?? ((db.prepare(`SELECT value FROM webhook_meta WHERE name = 'group_window_ms'`).pluck().get() as number | undefined) ?? 60_000);
    this.s = {
      version: db.prepare(`SELECT value FROM webhook_meta WHERE name = 'endpoints_version'`).pluck(),
      bumpVersion: db.prepare(`UPDATE webhook_meta SET value = value + 1 WHERE name = 'endpoints_version'`),
      enabled: db.prepare('SELECT * FROM webhook_endpoints WHERE enabled = 1 ORDER BY id'),
      groupGet: db.prepare('SELECT delivery_id, window_until FROM webhook_groups WHERE group_key = ?'),
      groupPut: db.prepare(
        `INSERT INTO webhook_groups (group_key, delivery_id, window_until) VALUES (?, ?, ?)
         ON CONFLICT (group_key) DO UPDATE SET delivery_id = excluded.delivery_id, window_until = excluded.window_until`,
      ),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (id, endpoint_id, anomaly_id, app_id, status, attempts, anomaly_count, anomaly_ids, last_ts,
           next_attempt_at, created_at, updated_at)
         VALUES (@id, @endpointId, @anomalyId, @appId, 'pending', 0, 1, @anomalyIds, @ts, @nextAttemptAt, @now, @now)`,
      ),
      // Only an alert nobody has tried yet takes more anomalies: once sent, a delivery id's body never changes.
      fold: db.prepare(
        `UPDATE webhook_deliveries SET anomaly_count = anomaly_count + 1,
           anomaly_ids = CASE WHEN json_array_length(anomaly_ids) < ${MAX_IDS_PER_ALERT} THEN json_insert(anomaly_ids, '$[#]', @anomalyId) ELSE anomaly_ids END,
           last_ts = max(last_ts, @ts), updated_at = @now
         WHERE id = @id AND status = 'pending' AND attempts = 0 AND claimed_until IS NULL`,
      ),
      claim: db.prepare(
        `UPDATE webhook_deliveries SET claimed_until = @until, claim_token = @token, attempts = attempts + 1, updated_at = @now
         WHERE id = (
           SELECT d.id FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
             LEFT JOIN webhook_endpoint_health h ON h.endpoint_id = d.endpoint_id
           WHERE d.status = 'pending' AND d.next_attempt_at <= @now AND (d.claimed_until IS NULL OR d.claimed_until <= @now)
             AND (h.blocked_until IS NULL OR h.blocked_until <= @now)
           ORDER BY d.next_attempt_at, d.seq LIMIT 1)
         RETURNING *`,
      ),
      health: db.prepare('SELECT failures, blocked_until FROM webhook_endpoint_health WHERE endpoint_id = ?'),
      maxPerMinute: db.prepare('SELECT max_per_minute FROM webhook_endpoints WHERE id = ?').pluck(),
      healthPut: db.prepare(
        `INSERT INTO webhook_endpoint_health (endpoint_id, failures, blocked_until) VALUES (@endpointId, @failures, @blockedUntil)
         ON CONFLICT (endpoint_id) DO UPDATE SET failures = excluded.failures, blocked_until = excluded.blocked_until`,
      ),
      delivered: db.prepare(
        `UPDATE webhook_deliveries SET status = 'delivered', delivered_at = @now, updated_at = @now, last_status = @status, last_error = NULL,
           claimed_until = NULL, claim_token = NULL
         WHERE id = @id AND claim_token = @token`,
      ),
      // The endpoint answered: deliveries waiting out their own backoff go now (the outage is over).
      releaseBacklog: db.prepare(
        `UPDATE webhook_deliveries SET next_attempt_at = @now WHERE endpoint_id = @endpointId AND status = 'pending' AND attempts > 0 AND next_attempt_at > @now`,
      ),
      failed: db.prepare(
        `UPDATE webhook_deliveries SET status = CASE WHEN @dead THEN 'dead' ELSE 'pending' END, next_attempt_at = @nextAttemptAt,
           last_status = @status, last_error = @error, updated_at = @now, claimed_until = NULL, claim_token = NULL
         WHERE id = @id AND claim_token = @token`,
      ),
      release: db.prepare(
        `UPDATE webhook_deliveries SET claimed_until = NULL, claim_token = NULL WHERE id = ? AND claim_token = ?`,
      ),
      nextDue: db.prepare(
        `SELECT min(max(d.next_attempt_at, coalesce(d.claimed_until, 0), coalesce(h.blocked_until, 0))) AS t
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
           LEFT JOIN webhook_endpoint_health h ON h.endpoint_id = d.endpoint_id
         WHERE d.status = 'pending'`,
      ).pluck(),
      getDelivery: db.prepare('SELECT * FROM webhook_deliveries WHERE id = ?'),
    };
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  // ---- endpoints ------------------------------------------------------------------------------------------------

  async listEndpoints(): Promise<WebhookEndpoint[]> {
    return (this.db.prepare('SELECT * FROM webhook_endpoints ORDER BY id').all() as EndpointRow[]).map(endpointFromRow);
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint | null> {
    const r = this.db.prepare('SELECT * FROM webhook_endpoints WHERE id = ?').get(id) as EndpointRow | undefined;
    return r ? endpointFromRow(r) : null;
  }

  private putEndpointSync(e: WebhookEndpoint): void {
    this.db
      .prepare(
        `INSERT INTO webhook_endpoints (id, url, secret, format, filters, enabled, description, max_per_minute, origin, created_at, updated_at)
         VALUES (@id, @url, @secret, @format, @filters, @enabled, @description, @maxPerMinute, @origin, @createdAt, @updatedAt)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret, format = excluded.format, filters = excluded.filters,
           enabled = excluded.enabled, description = excluded.description, max_per_minute = excluded.max_per_minute, origin = excluded.origin,
           updated_at = excluded.updated_at`,
      )
      .run({ ...e, filters: JSON.stringify(e.filters), enabled: e.enabled ? 1 : 0, description: e.description ?? null, maxPerMinute: e.maxPerMinute ?? null });
  }

  private deleteEndpointSync(id: string): boolean {
    const gone = this.db.prepare('DELETE FROM webhook_endpoints WHERE id = ?').run(id).changes > 0;
    if (gone) {
      this.db
        .prepare(`UPDATE webhook_deliveries SET status = 'cancelled', updated_at = ? WHERE endpoint_id = ? AND status IN ('pending', 'dead')`)
        .run(this.now(), id);
      this.db.prepare('DELETE FROM webhook_endpoint_health WHERE endpoint_id = ?').run(id);
    }
    return gone;
  }

  async putEndpoint(e: WebhookEndpoint): Promise<void> {
    this.db.transaction(() => {
      this.putEndpointSync(e);
      this.s.bumpVersion.run();
    })();
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    return this.db.transaction(() => {
      const gone = this.deleteEndpointSync(id);
      if (gone) this.s.bumpVersion.run();
      return gone;
    })();
  }

  async syncConfigEndpoints(endpoints: WebhookEndpoint[]): Promise<void> {
    this.db.transaction(() => {
      const existing = new Map((this.db.prepare('SELECT * FROM webhook_endpoints').all() as EndpointRow[]).map((r) => [r.id, endpointFromRow(r)]));
      const wanted = new Set(endpoints.map((e) => e.id));
      let changed = false;
      for (const e of endpoints) {
        const old = existing.get(e.id);
        if (old && sameConfigEndpoint(old, e)) continue;
        this.putEndpointSync({ ...e, createdAt: old?.createdAt ?? e.createdAt });
        changed = true;
      }
      for (const old of existing.values()) {
        if (old.origin === 'config' && !wanted.has(old.id)) changed = this.deleteEndpointSync(old.id) || changed;
      }
      if (changed) this.s.bumpVersion.run();
    })();
  }

  // ---- enqueue (inside the anomaly's transaction) ---------------------------------------------------------------

  /** The enabled endpoints, reloaded only when an endpoint changed (one indexed read per call otherwise). */
  private endpointsNow(): WebhookEndpoint[] {
    const v = this.s.version.get() as number;
    if (v !== this.endpointsVersion) {
      this.enabledEndpoints = (this.s.enabled.all() as EndpointRow[]).map(endpointFromRow);
      this.endpointsVersion = v;
    }
    return this.enabledEndpoints;
  }

  /**
   * Writes the deliveries for `fresh` anomalies. Synchronous: call it inside the transaction that stores them
   * (better-sqlite3 nests it as a savepoint when called from another transaction).
   */
  enqueueWithin(fresh: readonly Anomaly[], now = this.now()): EnqueueResult {
    const out: EnqueueResult = { created: [], grouped: [] };
    const endpoints = this.endpointsNow();
    if (!endpoints.length || !fresh.length) return out;
    const window = this.groupWindowMs;
    for (const a of fresh) {
      for (const e of endpoints) {
        if (!matchesFilters(e.filters, a)) continue;
        const key = groupKeyOf(e.id, a);
        const g = window > 0 ? (this.s.groupGet.get(key) as { delivery_id: string; window_until: number } | undefined) : undefined;
        let nextAttemptAt = now;
        if (g && g.window_until > now) {
          if (this.s.fold.run({ id: g.delivery_id, anomalyId: a.id, ts: a.ts, now }).changes > 0) {
            out.grouped.push({ deliveryId: g.delivery_id, anomalyId: a.id, endpointId: e.id });
            continue;
          }
          // The window's alert already went out: the next one waits for the window's end and collects until then.
          nextAttemptAt = g.window_until;
        }
        const id = randomUUID();
        this.s.insertDelivery.run({ id, endpointId: e.id, anomalyId: a.id, appId: a.appId, anomalyIds: JSON.stringify([a.id]), ts: a.ts, nextAttemptAt, now });
        if (window > 0) this.s.groupPut.run(key, id, nextAttemptAt + window);
        out.created.push({ deliveryId: id, anomalyId: a.id, endpointId: e.id, nextAttemptAt });
      }
    }
    return out;
  }

  async enqueue(fresh: readonly Anomaly[]): Promise<EnqueueResult> {
    return this.db.transaction(() => this.enqueueWithin(fresh))();
  }

  // ---- dispatch -------------------------------------------------------------------------------------------------

  async claim(now: number, leaseMs: number): Promise<ClaimedDelivery | null> {
    const token = randomUUID();
    const until = now + leaseMs;
    return this.db.transaction(() => {
      const r = this.s.claim.get({ now, until, token }) as DeliveryRow | undefined;
      if (!r) return null;
      // An endpoint that has been failing is probed by one delivery at a time: hold the rest until this one is done.
      // A capped endpoint (maxPerMinute) takes its next request one interval later at the earliest.
      const h = this.s.health.get(r.endpoint_id) as { failures: number; blocked_until: number } | undefined;
      const perMinute = this.s.maxPerMinute.get(r.endpoint_id) as number | null;
      const blockedUntil = Math.max(h && h.failures > 0 ? until : 0, perMinute ? now + Math.ceil(60_000 / perMinute) : 0);
      if (blockedUntil > 0) this.s.healthPut.run({ endpointId: r.endpoint_id, failures: h?.failures ?? 0, blockedUntil });
      return { ...deliveryFromRow(r), token, claimedUntil: until };
    })();
  }

  async markDelivered(c: ClaimedDelivery, now: number, status: number): Promise<boolean> {
    return this.db.transaction(() => {
      const ok = this.s.delivered.run({ id: c.id, token: c.token, now, status }).changes > 0;
      const h = this.s.health.get(c.endpointId) as { failures: number } | undefined;
      if (h && (h.failures > 0 || c.attempts > 1)) {
        this.s.healthPut.run({ endpointId: c.endpointId, failures: 0, blockedUntil: 0 });
        this.s.releaseBacklog.run({ endpointId: c.endpointId, now });
      }
      return ok;
    })();
  }

  async markFailed(c: ClaimedDelivery, o: FailureOutcome): Promise<boolean> {
    return this.db.transaction(() => {
      const ok =
        this.s.failed.run({ id: c.id, token: c.token, dead: o.dead ? 1 : 0, nextAttemptAt: o.nextAttemptAt, status: o.status, error: o.error.slice(0, 500), now: o.now })
          .changes > 0;
      const h = this.s.health.get(c.endpointId) as { failures: number } | undefined;
      this.s.healthPut.run({ endpointId: c.endpointId, failures: (h?.failures ?? 0) + 1, blockedUntil: o.endpointBlockedUntil });
      return ok;
    })();
  }

  async endpointFailures(endpointId: string): Promise<number> {
    return (this.s.health.get(endpointId) as { failures: number } | undefined)?.failures ?? 0;
  }

  async release(c: ClaimedDelivery): Promise<void> {
    this.db.transaction(() => {
      this.s.release.run(c.id, c.token);
      const h = this.s.health.get(c.endpointId) as { failures: number; blocked_until: number } | undefined;
      if (h && h.blocked_until === c.claimedUntil) this.s.healthPut.run({ endpointId: c.endpointId, failures: h.failures, blockedUntil: 0 });
    })();
  }

  async nextDueAt(): Promise<number | null> {
    return (this.s.nextDue.get() as number | null) ?? null;
  }

  // ---- views ----------------------------------------------------------------------------------------------------

  async getDelivery(id: string): Promise<Delivery | null> {
    const r = this.s.getDelivery.get(id) as DeliveryRow | undefined;
    return r ? deliveryFromRow(r) : null;
  }

  async listDeliveries(f: DeliveryFilter, page: { limit?: number; cursor?: string | null } = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.endpointId !== undefined) where.push('endpoint_id = ?'), args.push(f.endpointId);
    if (f.status !== undefined) where.push('status = ?'), args.push(f.status);
    if (f.appId !== undefined) where.push('app_id = ?'), args.push(f.appId);
    if (page.cursor) {
      where.push('seq < ?'), args.push(decodeDeliveryCursor(page.cursor));
    }
    const limit = Math.max(1, Math.min(page.limit ?? 100, 1000));
    const rows = this.db
      .prepare(`SELECT * FROM webhook_deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`)
      .all(...args, limit + 1) as DeliveryRow[];
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(deliveryFromRow), nextCursor: rows.length > limit && last ? encodeDeliveryCursor(last.seq) : null };
  }

  async replay(f: { deliveryId?: string; endpointId?: string; appId?: string }, now: number): Promise<number> {
    const where = [`status = 'dead'`];
    const args: unknown[] = [now, now];
    if (f.deliveryId !== undefined) where.push('id = ?'), args.push(f.deliveryId);
    if (f.endpointId !== undefined) where.push('endpoint_id = ?'), args.push(f.endpointId);
    if (f.appId !== undefined) where.push('app_id = ?'), args.push(f.appId);
    return this.db
      .prepare(`UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?, claimed_until = NULL, claim_token = NULL WHERE ${where.join(' AND ')}`)
      .run(...args).changes;
  }

  async stats(): Promise<OutboxStats> {
    const rows = this.db.prepare(`SELECT status, count(*) AS n FROM webhook_deliveries WHERE status IN ('pending', 'dead', 'delivered') GROUP BY status`).all() as Array<{
      status: DeliveryStatus;
      n: number;
    }>;
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    const oldest = this.db.prepare(`SELECT min(created_at) FROM webhook_deliveries WHERE status = 'pending'`).pluck().get() as number | null;
    return { pending: by.pending ?? 0, dead: by.dead ?? 0, delivered: by.delivered ?? 0, oldestPendingAt: oldest ?? null };
  }

  async prune(beforeMs: number, now: number): Promise<number> {
    return this.db.transaction(() => {
      const n = this.db.prepare(`DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'cancelled') AND updated_at < ?`).run(beforeMs).changes;
      this.db.prepare('DELETE FROM webhook_groups WHERE window_until < ?').run(now);
      return n;
    })();
  }
}
