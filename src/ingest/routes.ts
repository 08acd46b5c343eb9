// Ingest routes: seed 000's /v1/events/ingest and /v1/events/batch, seed 003's /v1/collect.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { RequestFacts } from '../event/envelope.js';
import { HttpError, errorBody } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import { createAuthenticator, createFactsBuilder, isBotUserAgent, verifySignature } from './edge.js';
import type { EventResult, IngestEvents } from './pipeline.js';

export interface IngestRouteDeps {
  config: Config;
  metrics: Metrics;
  ingestEvents: IngestEvents;
  authenticate: ReturnType<typeof createAuthenticator>;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Seed 003's collect body → our flat envelope. Its anonymous visitor has no device id: derive one per site/IP/UA. */
export function collectToEnvelope(body: Record<string, unknown>, facts: RequestFacts): Record<string, unknown> {
  const { site_id, event_name, url, referrer, user_id, session_id, ts, props, device_id, anonymous_id, ...rest } = body;
  const anon =
    device_id ??
    anonymous_id ??
    'anon-' +
      createHash('sha256')
        .update(`${String(site_id ?? facts.appId)}|${facts.ipHash ?? ''}|${facts.userAgent ?? ''}`)
        .digest('hex')
        .slice(0, 16);
  const envelope: Record<string, unknown> = {
    ...rest,
    appId: site_id,
    deviceId: anon,
    type: event_name ?? 'pageview',
    timestamp: ts,
    url,
    referrer,
    userId: user_id,
    sessionId: session_id,
  };
  if (props !== undefined) envelope.properties = props;
  for (const k of Object.keys(envelope)) if (envelope[k] === undefined) delete envelope[k];
  return envelope;
}

function summarize(results: EventResult[]) {
  let accepted = 0;
  let duplicate = 0;
  let rejected = 0;
  for (const r of results) {
    if (r.status === 'accepted') accepted++;
    else if (r.status === 'duplicate') duplicate++;
    else rejected++;
  }
  return { accepted, duplicate, rejected };
}

const resultJson = (r: EventResult, index: number) =>
  r.status === 'rejected' ? { index, status: r.status, error: r.error } : { index, status: r.status, eventId: r.eventId };

export function registerIngestRoutes(app: FastifyInstance, deps: IngestRouteDeps): void {
  const { config, metrics, ingestEvents, authenticate } = deps;
  const factsOf = createFactsBuilder(config);

  // Auth, signature and bot filtering for every ingest request; returns the facts or answers the request.
  async function edge(req: FastifyRequest, reply: FastifyReply, eventCount: number): Promise<RequestFacts | null> {
    const principal = req.principal ?? authenticate(req);
    verifySignature(req, principal.app, config.hmacWindowSeconds);
    const ua = typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null;
    if (isBotUserAgent(ua)) {
      metrics.eventsDropped.inc({ reason: 'bot' }, eventCount);
      await reply.code(202).send({ accepted: 0, duplicate: 0, rejected: 0, dropped: eventCount, reason: 'bot' });
      return null;
    }
    metrics.ingestBatchSize.observe(eventCount);
    return factsOf(req);
  }

  function batchOf(body: unknown): unknown[] {
    const events = Array.isArray(body) ? body : isObject(body) ? body.events ?? body.batch : undefined;
    if (!Array.isArray(events)) throw new HttpError(400, 'missing_field', 'must be an array of events', 'events');
    if (events.length === 0) throw new HttpError(400, 'invalid_field', 'must hold at least one event', 'events');
    if (events.length > config.maxBatchEvents) {
      throw new HttpError(413, 'too_many_events', `at most ${config.maxBatchEvents} events per batch`, 'events');
    }
    return events;
  }

  async function single(req: FastifyRequest, reply: FastifyReply, event: unknown, route: string) {
    const facts = await edge(req, reply, 1);
    if (!facts) return reply;
    const [r] = await ingestEvents([event], facts, route);
    if (r!.status === 'rejected') {
      const status = r!.error.code === 'forbidden_app' ? 403 : 400;
      return reply.code(status).send(errorBody(r!.error.code, r!.error.message, r!.error.field));
    }
    return reply.code(202).send({ status: r!.status, eventId: r!.eventId });
  }

  app.post('/v1/events/ingest', async (req, reply) => {
    const body = req.body;
    if (!isObject(body)) throw new HttpError(400, 'invalid_field', 'body must be a JSON object', 'event');
    return single(req, reply, isObject(body.event) ? body.event : body, 'ingest');
  });

  app.post('/v1/events/batch', async (req, reply) => {
    const events = batchOf(req.body);
    const facts = await edge(req, reply, events.length);
    if (!facts) return reply;
    const results = await ingestEvents(events, facts, 'batch');
    const counts = summarize(results);
    return reply.code(counts.rejected === results.length ? 400 : 202).send({ ...counts, results: results.map(resultJson) });
  });

  app.post('/v1/collect', async (req, reply) => {
    const body = req.body;
    const items = Array.isArray(body) ? body : isObject(body) && Array.isArray(body.events) ? body.events : [body];
    if (items.length > config.maxBatchEvents) throw new HttpError(413, 'too_many_events', `at most ${config.maxBatchEvents} events`, 'events');
    const facts = await edge(req, reply, items.length);
    if (!facts) return reply;
    const envelopes = items.map((it) => (isObject(it) ? collectToEnvelope(it, facts) : it));
    const results = await ingestEvents(envelopes, facts, 'collect');
    if (items.length === 1 && !Array.isArray(body)) {
      const r = results[0]!;
      if (r.status === 'rejected') {
        const field = r.error.field === 'appId' ? 'site_id' : r.error.field === 'type' ? 'event_name' : r.error.field === 'timestamp' ? 'ts' : r.error.field;
        return reply.code(r.error.code === 'forbidden_app' ? 403 : 400).send(errorBody(r.error.code, r.error.message, field));
      }
      return reply.code(202).send({ status: r.status, eventId: r.eventId });
    }
    const counts = summarize(results);
    return reply.code(counts.rejected === results.length ? 400 : 202).send({ ...counts, results: results.map(resultJson) });
  });
}
