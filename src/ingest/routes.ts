// Ingest routes: seed 000's /v1/events/ingest and /v1/events/batch, seed 003's /v1/collect.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { RequestFacts } from '../event/envelope.js';
import { eventsOfBody, type IngestRoute } from '../event/ingest-record.js';
import { checkBody, parseJsonBody } from './check-body.js';
import type { CheckPool } from './check-pool.js';
import { HttpError, errorBody } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import { createAuthenticator, createFactsBuilder, isBotUserAgent, verifySignature } from './edge.js';
import type { EventResult, IngestEvents } from './pipeline.js';

export interface IngestRouteDeps {
  config: Config;
  metrics: Metrics;
  ingestEvents: IngestEvents;
  authenticate: ReturnType<typeof createAuthenticator>;
  /** Checks large bodies off the event loop; without it every body is checked on the loop. */
  checkPool?: CheckPool;
}

/** Bodies from this size on are parsed and checked by the check worker (a round trip costs about as much as a small body). */
const WORKER_MIN_BYTES = 8 * 1024;


// Our envelope's field names → seed 003's, so a collect client is told about the field it sent.
const COLLECT_FIELDS: Record<string, string> = { appId: 'site_id', type: 'event_name', timestamp: 'ts', userId: 'user_id', sessionId: 'session_id', properties: 'props' };

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
  const { config, metrics, ingestEvents, authenticate, checkPool } = deps;
  const factsOf = createFactsBuilder(config);

  // Auth, signature and bot filtering for every ingest request; returns the facts or answers the request.
  async function edge(req: FastifyRequest, reply: FastifyReply, route: IngestRoute, raw: Buffer): Promise<RequestFacts | null> {
    const principal = req.principal ?? authenticate(req);
    verifySignature(req, principal.app, config.hmacWindowSeconds);
    const ua = typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null;
    if (isBotUserAgent(ua)) {
      const dropped = eventsOfBody(route, parseJsonBody(raw))?.length ?? 0;
      metrics.eventsDropped.inc({ reason: 'bot' }, dropped);
      await reply.code(202).send({ accepted: 0, duplicate: 0, rejected: 0, dropped, reason: 'bot' });
      return null;
    }
    return factsOf(req);
  }

  async function handle(req: FastifyRequest, reply: FastifyReply, route: IngestRoute) {
    // Ingest bodies arrive unparsed (their context's parser, node.ts): small ones are checked here, large ones by the check worker.
    const raw = req.rawBody ?? Buffer.alloc(0);
    const facts = await edge(req, reply, route, raw);
    if (!facts) return reply;
    const { checks, singular } =
      raw.length >= WORKER_MIN_BYTES && checkPool?.available
        ? await checkPool.check(route, raw, facts, config.maxBatchEvents)
        : checkBody(route, parseJsonBody(raw), facts, config.maxBatchEvents);
    metrics.ingestBatchSize.observe(checks.length);
    const results = await ingestEvents(checks, facts, route, raw);
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
