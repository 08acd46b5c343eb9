// Ingest routes: seed 000's /v1/events/ingest and /v1/events/batch, seed 003's /v1/collect.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { RequestFacts } from '../event/envelope.js';
import { envelopesOfBody, eventsOfBody, type IngestRoute } from '../event/ingest-record.js';
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

// Our envelope's field names → seed 003's, so a collect client is told about the field it sent.
const COLLECT_FIELDS: Record<string, string> = { appId: 'site_id', type: 'event_name', timestamp: 'ts', userId: 'user_id', sessionId: 'session_id', properties: 'props' };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

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

// Results are in request order (results[i] answers events[i]); rejections also name their index.
const resultJson = (r: EventResult, index: number) =>
  r.status === 'rejected' ? { index, status: r.status, error: r.error } : { status: r.status, eventId: r.eventId };

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

  function eventsOf(route: IngestRoute, body: unknown): unknown[] {
    const events = eventsOfBody(route, body);
    if (!events) {
      if (route === 'ingest') throw new HttpError(400, 'invalid_field', 'body must be a JSON object', 'event');
      throw new HttpError(400, 'missing_field', 'must be an array of events', 'events');
    }
    if (events.length === 0) throw new HttpError(400, 'invalid_field', 'must hold at least one event', 'events');
    if (events.length > config.maxBatchEvents) {
      throw new HttpError(413, 'too_many_events', `at most ${config.maxBatchEvents} events per batch`, 'events');
    }
    return events;
  }

  async function handle(req: FastifyRequest, reply: FastifyReply, route: IngestRoute) {
    const body = req.body;
    const count = eventsOf(route, body).length;
    const facts = await edge(req, reply, count);
    if (!facts) return reply;
    const envelopes = envelopesOfBody(route, body, facts)!;
    const results = await ingestEvents(envelopes, facts, route, req.rawBody ?? Buffer.from(JSON.stringify(body)));
    // One event sent as one (not as a list): answer with that event alone.
    const singular = route === 'ingest' || (route === 'collect' && !Array.isArray(body) && !(isObject(body) && Array.isArray(body.events)));
    if (singular) {
      const r = results[0]!;
      if (r.status === 'rejected') {
        const field = route === 'collect' ? COLLECT_FIELDS[r.error.field] ?? r.error.field : r.error.field;
        return reply.code(r.error.code === 'forbidden_app' ? 403 : 400).send(errorBody(r.error.code, r.error.message, field));
      }
      return reply.code(202).send({ status: r.status, eventId: r.eventId });
    }
    const counts = summarize(results);
    return reply.code(counts.rejected === results.length ? 400 : 202).send({ ...counts, results: results.map(resultJson) });
  }

  app.post('/v1/events/ingest', (req, reply) => handle(req, reply, 'ingest'));
  app.post('/v1/events/batch', (req, reply) => handle(req, reply, 'batch'));
  app.post('/v1/collect', (req, reply) => handle(req, reply, 'collect'));
}
