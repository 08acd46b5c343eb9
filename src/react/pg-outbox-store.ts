// The webhook outbox in PostgreSQL (scale-out): the same tables, semantics and port as the SQLite outbox. Several
// dispatchers in several processes claim with `FOR UPDATE SKIP LOCKED` (a row is taken by one transaction, the others
// pass over it), and an endpoint's health row is locked for the rest of a claim so "one probe at a time" and
// `maxPerMinute` hold across processes too. Deliveries are written in the anomaly's transaction (`enqueueWithin`).
import { createHash, randomUUID } from 'node:crypto';
import type { Anomaly } from '../detect/anomaly.js';
import { migratePg, params, withTransaction, type PgQueryable, type PgPool } from '../state/postgres.js';
import {
  decodeDeliveryCursor,
  deliveryFromRow,
  encodeDeliveryCursor,
  endpointFromRow,
  MAX_IDS_PER_ALERT,
  sameConfigEndpoint,
  type ClaimedDelivery,
  type Delivery,
  type DeliveryFilter,
  type DeliveryRow,
  type DeliveryStatus,
  type EndpointRow,
  type EnqueueResult,
  type FailureOutcome,
  type OutboxStats,
  type OutboxStore,
} from './outbox-store.js';
import { groupKeyOf, matchesFilters, type WebhookEndpoint } from './webhook.js';

// Version for version, the same steps as the SQLite outbox's.
const MIGRATIONS = [
  `CREATE TABLE webhook_endpoints (
     id TEXT COLLATE "C" PRIMARY KEY,
     url TEXT NOT NULL,
     secret TEXT NOT NULL,
     format TEXT NOT NULL,
     filters TEXT NOT NULL,
     enabled INTEGER NOT NULL,
     description TEXT,
     origin TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE TABLE webhook_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
   INSERT INTO webhook_meta (name, value) VALUES ('endpoints_version', 0);
   CREATE TABLE webhook_deliveries (
     seq BIGSERIAL PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     endpoint_id TEXT COLLATE "C" NOT NULL,
     anomaly_id TEXT NOT NULL,
     app_id TEXT NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     anomaly_count INTEGER NOT NULL,
     anomaly_ids TEXT NOT NULL,
     last_ts BIGINT NOT NULL,
     next_attempt_at BIGINT NOT NULL,
     claimed_until BIGINT,
     claim_token TEXT,
     last_status INTEGER,
     last_error TEXT,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     delivered_at BIGINT
   );
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, seq);
   CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status, seq);
   CREATE TABLE webhook_groups (group_key TEXT PRIMARY KEY, delivery_id TEXT NOT NULL, window_until BIGINT NOT NULL);
   CREATE TABLE webhook_endpoint_health (endpoint_id TEXT PRIMARY KEY, failures INTEGER NOT NULL, blocked_until BIGINT NOT NULL);`,
  `ALTER TABLE webhook_endpoints ADD COLUMN max_per_minute INTEGER;`,
];

export async function migratePgReactStore(pool: PgPool): Promise<void> {
  await migratePg(pool, 'react', MIGRATIONS);
}

/** Thrown inside a claim's transaction to roll it back: the endpoint was held back by a concurrent claim. */
class EndpointHeld extends Error {}
const CLAIM_TRIES = 4;

export class PgOutboxStore implements OutboxStore {
  private endpointsVersion = -1;
  private enabledEndpoints: WebhookEndpoint[] = [];

  private constructor(
    private readonly pool: PgPool,
    private readonly groupWindowMs: number,
    private readonly clock: (() => number) | undefined,
  ) {}

  /**
   * Migrates the outbox tables and returns the store (the pool belongs to the caller).
   * @param opts.groupWindowMs as SqliteOutboxStore: given by the process that owns the configuration (saved in the
   *   store); other processes (detectors, dispatchers) read it from there.
   */
  static async open(pool: PgPool, opts: { groupWindowMs?: number; now?: () => number } = {}): Promise<PgOutboxStore> {
    await migratePgReactStore(pool);
    if (opts.groupWindowMs !== undefined) {
      await pool.query(
        `INSERT INTO webhook_meta (name, value) VALUES ('group_window_ms', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
        [opts.groupWindowMs],
      );
    }
    const stored = (await pool.query<{ value: number }>(`SELECT value FROM webhook_meta WHERE name = 'group_window_ms'`)).rows[0]?.value;
    return new PgOutboxStore(pool, opts.groupWindowMs ?? stored ?? 60_000, opts.now);
  }

  private now(): number {
    return this.clock?.() ?? Date.now();
  }

  // ---- endpoints ------------------------------------------------------------------------------------------------

  async listEndpoints(): Promise<WebhookEndpoint[]> {
    return (await this.pool.query<EndpointRow>('SELECT * FROM webhook_endpoints ORDER BY id')).rows.map(endpointFromRow);
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint | null> {
    const r = (await this.pool.query<EndpointRow>('SELECT * FROM webhook_endpoints WHERE id = $1', [id])).rows[0];
    return r ? endpointFromRow(r) : null;
  }

  private async putEndpointIn(c: PgQueryable, e: WebhookEndpoint): Promise<void> {
    await c.query(
      `INSERT INTO webhook_endpoints (id, url, secret, format, filters, enabled, description, max_per_minute, origin, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret, format = excluded.format, filters = excluded.filters,
         enabled = excluded.enabled, description = excluded.description, max_per_minute = excluded.max_per_minute, origin = excluded.origin,
         updated_at = excluded.updated_at`,
      [e.id, e.url, e.secret, e.format, JSON.stringify(e.filters), e.enabled ? 1 : 0, e.description ?? null, e.maxPerMinute ?? null, e.origin, e.createdAt, e.updatedAt],
    );
  }

  private async deleteEndpointIn(c: PgQueryable, id: string): Promise<boolean> {
    const gone = ((await c.query('DELETE FROM webhook_endpoints WHERE id = $1', [id])).rowCount ?? 0) > 0;
    if (gone) {
      await c.query(`UPDATE webhook_deliveries SET status = 'cancelled', updated_at = $1 WHERE endpoint_id = $2 AND status IN ('pending', 'dead')`, [
        this.now(),
        id,
      ]);
      await c.query('DELETE FROM webhook_endpoint_health WHERE endpoint_id = $1', [id]);
    }
    return gone;
  }

  private async bumpVersion(c: PgQueryable): Promise<void> {
    await c.query(`UPDATE webhook_meta SET value = value + 1 WHERE name = 'endpoints_version'`);
  }

  async putEndpoint(e: WebhookEndpoint): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      await this.putEndpointIn(c, e);
      await this.bumpVersion(c);
    });
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    return withTransaction(this.pool, async (c) => {
      const gone = await this.deleteEndpointIn(c, id);
      if (gone) await this.bumpVersion(c);
      return gone;
    });
  }

  async syncConfigEndpoints(endpoints: WebhookEndpoint[]): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      const existing = new Map((await c.query<EndpointRow>('SELECT * FROM webhook_endpoints')).rows.map((r) => [r.id, endpointFromRow(r)]));
      const wanted = new Set(endpoints.map((e) => e.id));
      let changed = false;
      for (const e of endpoints) {
        const old = existing.get(e.id);
        if (old && sameConfigEndpoint(old, e)) continue;
        await this.putEndpointIn(c, { ...e, createdAt: old?.createdAt ?? e.createdAt });
        changed = true;
      }
      for (const old of existing.values()) {
        if (old.origin === 'config' && !wanted.has(old.id)) changed = (await this.deleteEndpointIn(c, old.id)) || changed;
      }
      if (changed) await this.bumpVersion(c);
    });
  }

  // ---- enqueue (inside the anomaly's transaction) ---------------------------------------------------------------

  /** The enabled endpoints, reloaded only when an endpoint changed (one indexed read per call otherwise). */
  private async endpointsNow(c: PgQueryable): Promise<WebhookEndpoint[]> {
    const v = (await c.query<{ value: number }>(`SELECT value FROM webhook_meta WHERE name = 'endpoints_version'`)).rows[0]!.value;
    if (v !== this.endpointsVersion) {
      this.enabledEndpoints = (await c.query<EndpointRow>('SELECT * FROM webhook_endpoints WHERE enabled = 1 ORDER BY id')).rows.map(endpointFromRow);
      this.endpointsVersion = v;
    }
    return this.enabledEndpoints;
  }

  /**
   * Writes the deliveries for `fresh` anomalies on `c`: pass the client of the transaction that stores them.
   * A group key belongs to one entity, and one detector worker owns an entity, so two writers never race on one key.
   */
  async enqueueWithin(c: PgQueryable, fresh: readonly Anomaly[], now = this.now()): Promise<EnqueueResult> {
    const out: EnqueueResult = { created: [], grouped: [] };
    if (!fresh.length) return out;
    const endpoints = await this.endpointsNow(c);
    if (!endpoints.length) return out;
    const window = this.groupWindowMs;
    for (const a of fresh) {
      for (const e of endpoints) {
        if (!matchesFilters(e.filters, a)) continue;
        // PostgreSQL text holds no NUL (the key's separator): the key is stored as its digest.
        const key = createHash('sha256').update(groupKeyOf(e.id, a)).digest('base64url');
        const g =
          window > 0
            ? (await c.query<{ delivery_id: string; window_until: number }>('SELECT delivery_id, window_until FROM webhook_groups WHERE group_key = $1', [key])).rows[0]
            : undefined;
        let nextAttemptAt = now;
        if (g && g.window_until > now) {
          // Only an alert nobody has tried yet takes more anomalies: once sent, a delivery id's body never changes.
          const folded = await c.query(
            `UPDATE webhook_deliveries SET anomaly_count = anomaly_count + 1,
               anomaly_ids = CASE WHEN json_array_length(anomaly_ids::json) < ${MAX_IDS_PER_ALERT}
                 THEN (anomaly_ids::jsonb || jsonb_build_array($2::text))::text ELSE anomaly_ids END,
               last_ts = greatest(last_ts, $3), updated_at = $4
             WHERE id = $1 AND status = 'pending' AND attempts = 0 AND claimed_until IS NULL`,
            [g.delivery_id, a.id, a.ts, now],
          );
          if ((folded.rowCount ?? 0) > 0) {
            out.grouped.push({ deliveryId: g.delivery_id, anomalyId: a.id, endpointId: e.id });
            continue;
          }
          // The window's alert already went out: the next one waits for the window's end and collects until then.
          nextAttemptAt = g.window_until;
        }
        const id = randomUUID();
        await c.query(
          `INSERT INTO webhook_deliveries (id, endpoint_id, anomaly_id, app_id, status, attempts, anomaly_count, anomaly_ids, last_ts,
             next_attempt_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, 'pending', 0, 1, $5, $6, $7, $8, $8)`,
          [id, e.id, a.id, a.appId, JSON.stringify([a.id]), a.ts, nextAttemptAt, now],
        );
        if (window > 0) {
          await c.query(
            `INSERT INTO webhook_groups (group_key, delivery_id, window_until) VALUES ($1, $2, $3)
             ON CONFLICT (group_key) DO UPDATE SET delivery_id = excluded.delivery_id, window_until = excluded.window_until`,
            [key, id, nextAttemptAt + window],
          );
        }
        out.created.push({ deliveryId: id, anomalyId: a.id, endpointId: e.id, nextAttemptAt });
      }
    }
    return out;
  }

  async enqueue(fresh: readonly Anomaly[]): Promise<EnqueueResult> {
    return withTransaction(this.pool, (c) => this.enqueueWithin(c, fresh));
  }

  // ---- dispatch -------------------------------------------------------------------------------------------------

  async claim(now: number, leaseMs: number): Promise<ClaimedDelivery | null> {
    // A claim that finds its endpoint held back by a concurrent one (locked health row, then read) starts over.
    const calledAt = performance.now();
    for (let i = 0; i < CLAIM_TRIES; i++) {
      try {
        return await this.claimOnce(now, leaseMs, calledAt);
      } catch (e) {
        if (!(e instanceof EndpointHeld)) throw e;
      }
    }
    return null;
  }

  private async claimOnce(now: number, leaseMs: number, calledAt: number): Promise<ClaimedDelivery | null> {
    const token = randomUUID();
    const until = now + leaseMs;
    return withTransaction(this.pool, async (c) => {
      const r = (
        await c.query<DeliveryRow & { endpoint_max_per_minute: number | null }>(
          `UPDATE webhook_deliveries AS claimed SET claimed_until = $1, claim_token = $2, attempts = claimed.attempts + 1, updated_at = $3
           FROM webhook_endpoints ep
           WHERE ep.id = claimed.endpoint_id AND claimed.seq = (
             SELECT d.seq FROM webhook_deliveries d
               JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
               LEFT JOIN webhook_endpoint_health h ON h.endpoint_id = d.endpoint_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= $3 AND (d.claimed_until IS NULL OR d.claimed_until <= $3)
               AND (h.blocked_until IS NULL OR h.blocked_until <= $3)
             ORDER BY d.next_attempt_at, d.seq LIMIT 1
             FOR UPDATE OF d SKIP LOCKED)
           RETURNING claimed.*, ep.max_per_minute AS endpoint_max_per_minute`,
          [until, token, now],
        )
      ).rows[0];
      if (!r) return null;
      // The endpoint's health row, created if missing and locked until commit (the no-op update takes the row lock):
      // a concurrent claim for the same endpoint waits here and then sees the hold this one sets.
      const h = (
        await c.query<{ failures: number; blocked_until: number }>(
          `INSERT INTO webhook_endpoint_health (endpoint_id, failures, blocked_until) VALUES ($1, 0, 0)
           ON CONFLICT (endpoint_id) DO UPDATE SET endpoint_id = excluded.endpoint_id RETURNING failures, blocked_until`,
          [r.endpoint_id],
        )
      ).rows[0]!;
      // `now` as of this moment: the claim may have waited (pool, lock) and the send follows the commit, so a cap's
      // interval counts from here, not from when the caller read its clock.
      const at = now + Math.round(performance.now() - calledAt);
      if (h.blocked_until > at) throw new EndpointHeld();
      // An endpoint that has been failing is probed by one delivery at a time: hold the rest until this one is done.
      // A capped endpoint (maxPerMinute) takes its next request one interval later at the earliest.
      const perMinute = r.endpoint_max_per_minute;
      const blockedUntil = Math.max(h.failures > 0 ? until : 0, perMinute ? at + Math.ceil(60_000 / perMinute) : 0);
      if (blockedUntil > 0) await this.putHealth(c, r.endpoint_id, h.failures, blockedUntil);
      return { ...deliveryFromRow(r), token, claimedUntil: until };
    });
  }

  private async putHealth(c: PgQueryable, endpointId: string, failures: number, blockedUntil: number): Promise<void> {
    await c.query(
      `INSERT INTO webhook_endpoint_health (endpoint_id, failures, blocked_until) VALUES ($1, $2, $3)
       ON CONFLICT (endpoint_id) DO UPDATE SET failures = excluded.failures, blocked_until = excluded.blocked_until`,
      [endpointId, failures, blockedUntil],
    );
  }

  private async healthFor(c: PgQueryable, endpointId: string): Promise<{ failures: number; blocked_until: number } | undefined> {
    return (
      await c.query<{ failures: number; blocked_until: number }>('SELECT failures, blocked_until FROM webhook_endpoint_health WHERE endpoint_id = $1 FOR UPDATE', [
        endpointId,
      ])
    ).rows[0];
  }

  async markDelivered(c: ClaimedDelivery, now: number, status: number): Promise<boolean> {
    return withTransaction(this.pool, async (tx) => {
      const ok =
        ((
          await tx.query(
            `UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $3, updated_at = $3, last_status = $4, last_error = NULL,
               claimed_until = NULL, claim_token = NULL
             WHERE id = $1 AND claim_token = $2`,
            [c.id, c.token, now, status],
          )
        ).rowCount ?? 0) > 0;
      const h = await this.healthFor(tx, c.endpointId);
      if (h && (h.failures > 0 || c.attempts > 1)) {
        await this.putHealth(tx, c.endpointId, 0, 0);
        // The endpoint answered: deliveries waiting out their own backoff go now (the outage is over).
        await tx.query(
          `UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE endpoint_id = $1 AND status = 'pending' AND attempts > 0 AND next_attempt_at > $2`,
          [c.endpointId, now],
        );
      }
      return ok;
    });
  }

  async markFailed(c: ClaimedDelivery, o: FailureOutcome): Promise<boolean> {
    return withTransaction(this.pool, async (tx) => {
      const ok =
        ((
          await tx.query(
            `UPDATE webhook_deliveries SET status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END, next_attempt_at = $4,
               last_status = $5, last_error = $6, updated_at = $7, claimed_until = NULL, claim_token = NULL
             WHERE id = $1 AND claim_token = $2`,
            [c.id, c.token, o.dead, o.nextAttemptAt, o.status, o.error.slice(0, 500), o.now],
          )
        ).rowCount ?? 0) > 0;
      const h = await this.healthFor(tx, c.endpointId);
      await this.putHealth(tx, c.endpointId, (h?.failures ?? 0) + 1, o.endpointBlockedUntil);
      return ok;
    });
  }

  async endpointFailures(endpointId: string): Promise<number> {
    return (await this.pool.query<{ failures: number }>('SELECT failures FROM webhook_endpoint_health WHERE endpoint_id = $1', [endpointId])).rows[0]?.failures ?? 0;
  }

  async release(c: ClaimedDelivery): Promise<void> {
    await withTransaction(this.pool, async (tx) => {
      await tx.query('UPDATE webhook_deliveries SET claimed_until = NULL, claim_token = NULL WHERE id = $1 AND claim_token = $2', [c.id, c.token]);
      const h = await this.healthFor(tx, c.endpointId);
      if (h && h.blocked_until === c.claimedUntil) await this.putHealth(tx, c.endpointId, h.failures, 0);
    });
  }

  async nextDueAt(): Promise<number | null> {
    const { rows } = await this.pool.query<{ t: number | null }>(
      `SELECT min(greatest(d.next_attempt_at, coalesce(d.claimed_until, 0), coalesce(h.blocked_until, 0))) AS t
       FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
         LEFT JOIN webhook_endpoint_health h ON h.endpoint_id = d.endpoint_id
       WHERE d.status = 'pending'`,
    );
    return rows[0]?.t ?? null;
  }

  // ---- views ----------------------------------------------------------------------------------------------------

  async getDelivery(id: string): Promise<Delivery | null> {
    const r = (await this.pool.query<DeliveryRow>('SELECT * FROM webhook_deliveries WHERE id = $1', [id])).rows[0];
    return r ? deliveryFromRow(r) : null;
  }

  async listDeliveries(f: DeliveryFilter, page: { limit?: number; cursor?: string | null } = {}) {
    const { args, p } = params();
    const where: string[] = [];
    if (f.endpointId !== undefined) where.push(`endpoint_id = ${p(f.endpointId)}`);
    if (f.status !== undefined) where.push(`status = ${p(f.status)}`);
    if (f.appId !== undefined) where.push(`app_id = ${p(f.appId)}`);
    if (page.cursor) where.push(`seq < ${p(decodeDeliveryCursor(page.cursor))}`);
    const limit = Math.max(1, Math.min(page.limit ?? 100, 1000));
    const { rows } = await this.pool.query<DeliveryRow>(
      `SELECT * FROM webhook_deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ${p(limit + 1)}`,
      args,
    );
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(deliveryFromRow), nextCursor: rows.length > limit && last ? encodeDeliveryCursor(last.seq) : null };
  }

  async replay(f: { deliveryId?: string; endpointId?: string; appId?: string }, now: number): Promise<number> {
    const { args, p } = params();
    const set = `status = 'pending', attempts = 0, next_attempt_at = ${p(now)}, updated_at = ${p(now)}, claimed_until = NULL, claim_token = NULL`;
    const where = [`status = 'dead'`];
    if (f.deliveryId !== undefined) where.push(`id = ${p(f.deliveryId)}`);
    if (f.endpointId !== undefined) where.push(`endpoint_id = ${p(f.endpointId)}`);
    if (f.appId !== undefined) where.push(`app_id = ${p(f.appId)}`);
    return (await this.pool.query(`UPDATE webhook_deliveries SET ${set} WHERE ${where.join(' AND ')}`, args)).rowCount ?? 0;
  }

  async stats(): Promise<OutboxStats> {
    const { rows } = await this.pool.query<{ status: DeliveryStatus; n: number }>(
      `SELECT status, count(*) AS n FROM webhook_deliveries WHERE status IN ('pending', 'dead', 'delivered') GROUP BY status`,
    );
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    const oldest = (await this.pool.query<{ t: number | null }>(`SELECT min(created_at) AS t FROM webhook_deliveries WHERE status = 'pending'`)).rows[0]?.t;
    return { pending: by.pending ?? 0, dead: by.dead ?? 0, delivered: by.delivered ?? 0, oldestPendingAt: oldest ?? null };
  }

  async prune(beforeMs: number, now: number): Promise<number> {
    return withTransaction(this.pool, async (c) => {
      const n = (await c.query(`DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'cancelled') AND updated_at < $1`, [beforeMs])).rowCount ?? 0;
      await c.query('DELETE FROM webhook_groups WHERE window_until < $1', [now]);
      return n;
    });
  }
}
