// Webhooks over HTTP: endpoints CRUD (the secret is shown once, at creation), their deliveries, the dead letters and
// their replay (same delivery id, fresh attempts). An app key manages the endpoints bound to its own app only
// (`filters.appIds = [its app]`); the admin key manages all. Endpoints from the config file are read-only here.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { HttpError } from '../http/errors.js';
import { addRouteDocs } from '../http/openapi.js';
import type { Principal } from '../ingest/edge.js';
import { CursorError, DELIVERY_STATUSES, type Delivery, type OutboxStore } from './outbox-store.js';
import { endpointInputSchema, endpointPatchSchema, newSecret, type WebhookEndpoint } from './webhook.js';

const RESERVED_IDS = new Set(['dead-letters', 'deliveries']);
const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().optional(),
});
const deliveriesQuery = pageQuery.extend({ status: z.enum(DELIVERY_STATUSES as [string, ...string[]]).optional() });
const deadQuery = pageQuery.extend({ endpoint_id: z.string().optional() });

addRouteDocs(
  { method: 'GET', path: '/v1/webhooks', tag: 'reactions', summary: 'Webhook endpoints (secrets are never shown again)' },
  { method: 'POST', path: '/v1/webhooks', tag: 'reactions', summary: 'Create a webhook endpoint (the answer carries its signing secret, once)', body: endpointInputSchema, ok: { status: 201, description: 'created' } },
  { method: 'GET', path: '/v1/webhooks/:id', tag: 'reactions', summary: 'One webhook endpoint' },
  { method: 'PATCH', path: '/v1/webhooks/:id', tag: 'reactions', summary: 'Change an endpoint (URL, secret, format, filters, enabled)', body: endpointPatchSchema },
  { method: 'DELETE', path: '/v1/webhooks/:id', tag: 'reactions', summary: 'Delete an endpoint (its pending deliveries are cancelled)' },
  { method: 'GET', path: '/v1/webhooks/:id/deliveries', tag: 'reactions', summary: "An endpoint's deliveries, newest first", query: deliveriesQuery },
  { method: 'POST', path: '/v1/webhooks/:id/dead-letters/replay', tag: 'reactions', summary: "Replay every dead letter of an endpoint (same delivery ids)" },
  { method: 'GET', path: '/v1/webhooks/deliveries/:deliveryId', tag: 'reactions', summary: 'One delivery: status, attempts, last answer' },
  { method: 'GET', path: '/v1/webhooks/dead-letters', tag: 'reactions', summary: 'Deliveries that ran out of attempts', query: deadQuery },
  { method: 'POST', path: '/v1/webhooks/dead-letters/:deliveryId/replay', tag: 'reactions', summary: 'Replay one dead letter (same delivery id, fresh attempts)' },
);

export interface ReactRouteDeps {
  store: OutboxStore;
  authenticate: (req: FastifyRequest) => Principal;
  /** Called when deliveries became due (replay, an endpoint enabled): the dispatcher looks at once. */
  wake: () => void;
  now?: () => number;
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HttpError(400, 'invalid_field', issue.message, issue.path.map(String).join('.') || undefined);
  }
  return r.data;
}

/** An endpoint as the API shows it: no secret, a hint of it. */
export const endpointView = (e: WebhookEndpoint) => {
  const { secret, ...rest } = e;
  return { ...rest, secretHint: `${secret.slice(0, 8)}…` };
};

const deliveryView = (d: Delivery) => ({
  ...d,
  nextAttemptAt: d.status === 'pending' ? new Date(d.nextAttemptAt).toISOString() : null,
  lastTs: new Date(d.lastTs).toISOString(),
  createdAt: new Date(d.createdAt).toISOString(),
  updatedAt: new Date(d.updatedAt).toISOString(),
  deliveredAt: d.deliveredAt === null ? null : new Date(d.deliveredAt).toISOString(),
});

export function registerReactRoutes(app: FastifyInstance, { store, authenticate, wake, now = Date.now }: ReactRouteDeps): void {
  /** An app key sees the endpoints bound to exactly its app. */
  const visible = (p: Principal, e: WebhookEndpoint) => p.appId === null || (e.filters.appIds?.length === 1 && e.filters.appIds[0] === p.appId);

  async function ownEndpoint(req: FastifyRequest, write = false): Promise<{ p: Principal; e: WebhookEndpoint }> {
    const p = authenticate(req);
    const e = await store.getEndpoint((req.params as { id: string }).id);
    if (!e || !visible(p, e)) throw new HttpError(404, 'not_found', 'no such webhook endpoint');
    if (write && e.origin === 'config') throw new HttpError(409, 'managed_by_config', 'this endpoint is defined in the config file; change it there');
    return { p, e };
  }

  /** An app key's endpoints filter on its app only. */
  function scopeFilters(p: Principal, filters: WebhookEndpoint['filters']): WebhookEndpoint['filters'] {
    if (p.appId === null) return filters;
    if (filters.appIds && (filters.appIds.length !== 1 || filters.appIds[0] !== p.appId)) {
      throw new HttpError(403, 'forbidden_app', `this API key manages webhooks of app ${p.appId} only`, 'filters.appIds');
    }
    return { ...filters, appIds: [p.appId] };
  }

  const page = async <T>(fn: () => Promise<T>) => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CursorError) throw new HttpError(400, 'invalid_field', 'not a cursor this API gave', 'cursor');
      throw e;
    }
  };

  app.get('/v1/webhooks', async (req) => {
    const p = authenticate(req);
    return { items: (await store.listEndpoints()).filter((e) => visible(p, e)).map(endpointView) };
  });

  app.post('/v1/webhooks', async (req, reply) => {
    const p = authenticate(req);
    const input = parse(endpointInputSchema, req.body);
    const id = input.id ?? `wh_${crypto.randomUUID().slice(0, 8)}`;
    if (RESERVED_IDS.has(id)) throw new HttpError(400, 'invalid_field', `${id} is reserved`, 'id');
    if (await store.getEndpoint(id)) throw new HttpError(409, 'conflict', `an endpoint ${id} exists`, 'id');
    const t = now();
    const endpoint: WebhookEndpoint = {
      id,
      url: input.url,
      secret: input.secret ?? newSecret(),
      format: input.format,
      filters: scopeFilters(p, input.filters),
      enabled: input.enabled,
      description: input.description ?? null,
      maxPerMinute: input.maxPerMinute ?? null,
      origin: 'api',
      createdAt: t,
      updatedAt: t,
    };
    await store.putEndpoint(endpoint);
    return reply.code(201).send({ ...endpointView(endpoint), secret: endpoint.secret });
  });

  app.get('/v1/webhooks/dead-letters', async (req) => {
    const p = authenticate(req);
    const q = parse(deadQuery, req.query);
    const r = await page(() => store.listDeliveries({ status: 'dead', endpointId: q.endpoint_id, appId: p.appId ?? undefined }, { limit: q.limit ?? 50, cursor: q.cursor ?? null }));
    return { items: r.items.map(deliveryView), nextCursor: r.nextCursor };
  });

  app.post('/v1/webhooks/dead-letters/:deliveryId/replay', async (req) => {
    const p = authenticate(req);
    const id = (req.params as { deliveryId: string }).deliveryId;
    const d = await store.getDelivery(id);
    if (!d || (p.appId && d.appId !== p.appId)) throw new HttpError(404, 'not_found', 'no such delivery');
    if (d.status !== 'dead') throw new HttpError(409, 'not_dead', `delivery is ${d.status}; only dead letters are replayed`);
    const n = await store.replay({ deliveryId: id }, now());
    wake();
    return { replayed: n, deliveryId: id };
  });

  app.get('/v1/webhooks/deliveries/:deliveryId', async (req) => {
    const p = authenticate(req);
    const d = await store.getDelivery((req.params as { deliveryId: string }).deliveryId);
    if (!d || (p.appId && d.appId !== p.appId)) throw new HttpError(404, 'not_found', 'no such delivery');
    return deliveryView(d);
  });

  app.get('/v1/webhooks/:id', async (req) => endpointView((await ownEndpoint(req)).e));

  app.patch('/v1/webhooks/:id', async (req) => {
    const { p, e } = await ownEndpoint(req, true);
    const patch = parse(endpointPatchSchema, req.body);
    const next: WebhookEndpoint = {
      ...e,
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
      filters: patch.filters ? scopeFilters(p, patch.filters) : e.filters,
      updatedAt: now(),
    };
    await store.putEndpoint(next);
    if (next.enabled) wake();
    return endpointView(next);
  });

  app.delete('/v1/webhooks/:id', async (req, reply) => {
    const { e } = await ownEndpoint(req, true);
    await store.deleteEndpoint(e.id);
    return reply.code(204).send();
  });

  app.get('/v1/webhooks/:id/deliveries', async (req) => {
    const { p, e } = await ownEndpoint(req);
    const q = parse(deliveriesQuery, req.query);
    const r = await page(() =>
      store.listDeliveries({ endpointId: e.id, status: q.status as Delivery['status'] | undefined, appId: p.appId ?? undefined }, { limit: q.limit ?? 50, cursor: q.cursor ?? null }),
    );
    return { items: r.items.map(deliveryView), nextCursor: r.nextCursor };
  });

  app.post('/v1/webhooks/:id/dead-letters/replay', async (req) => {
    const { p, e } = await ownEndpoint(req);
    const n = await store.replay({ endpointId: e.id, appId: p.appId ?? undefined }, now());
    wake();
    return { replayed: n, endpointId: e.id };
  });
}
