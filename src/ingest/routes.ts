// Ingest routes: seed 000's /v1/events/ingest and /v1/events/batch, seed 003's /v1/collect.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { RequestFacts } from '../event/envelope.js';
import { eventsOfBody, SEGMENT_ROUTES, type IngestRoute } from '../event/ingest-record.js';
import { checkBody, EVENT_ID_CHARS, idAt, parseJsonBody, type CheckedBody } from './check-body.js';
import type { CheckPool } from './check-pool.js';
import { HttpError, errorBody } from '../http/errors.js';
import type { Metrics } from '../obs/metrics.js';
import { createAuthenticator, createFactsBuilder, isBotUserAgent, verifySignature } from './edge.js';
import { REJECTED, type IngestEvents, type IngestOutcome } from './pipeline.js';
import type { FieldError } from '../event/envelope.js';
import { copyBytes } from '../util/bytes.js';

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


// Our envelope's field names → the client's own (seed 003's collect, Segment's), so a client is told about the field it sent.
const COLLECT_FIELDS: Record<string, string> = { appId: 'site_id', type: 'event_name', timestamp: 'ts', userId: 'user_id', sessionId: 'session_id', properties: 'props' };
const SEGMENT_FIELDS: Record<string, string> = {
  eventId: 'messageId',
  deviceId: 'anonymousId',
  type: 'event',
  'context.appVersion': 'context.app.version',
  'context.appBuild': 'context.app.build',
  'context.os': 'context.os.name',
  'context.osVersion': 'context.os.version',
  'context.deviceModel': 'context.device.model',
  'context.platform': 'context.device.type',
  orderId: 'properties.order_id',
  totalAmount: 'properties.total',
  productId: 'properties.product_id',
  screenName: 'name',
};
const fieldNamesOf = (route: IngestRoute): Record<string, string> | null =>
  route === 'collect' ? COLLECT_FIELDS : route.startsWith('segment:') ? SEGMENT_FIELDS : null;

/** A rejection names the field as the client called it. */
function clientError(e: FieldError, names: Record<string, string> | null): FieldError {
  return names && names[e.field] ? { ...e, field: names[e.field]! } : e;
}

const STATUS_NAMES = ['accepted', 'duplicate', 'rejected'] as const;
/** An accepted or duplicate entry of a batch answer, up to its event id. */
const ENTRY_HEADS = STATUS_NAMES.map((s) => Buffer.from(`{"status":"${s}","eventId":"`));
const ENTRY_TAIL = Buffer.from('"}');

/**
 * A batch's answer, serialised here: one entry per event in request order (results[i] answers events[i]); rejections
 * also name their index. Written as bytes, the event ids copied from the checked body's: as a string (or an object per
 * event) the answer was the event loop's largest garbage, several times its own size a request.
 */
function batchAnswer(body: CheckedBody, outcome: IngestOutcome, names: Record<string, string> | null): Buffer {
  const head = `{"accepted":${outcome.accepted},"duplicate":${outcome.duplicate},"rejected":${outcome.rejected},"results":[`;
  const rejections = body.errors.map(([i, e]) => Buffer.from(JSON.stringify({ index: i, status: 'rejected', error: clientError(e, names) })));
  let size = head.length + Math.max(0, body.count - 1) + 2;
  for (let i = 0; i < body.count; i++) {
    const status = outcome.statuses[i]!;
    if (status !== REJECTED) size += ENTRY_HEADS[status]!.length + EVENT_ID_CHARS + ENTRY_TAIL.length;
  }
  for (const r of rejections) size += r.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'latin1');
  let rejected = 0;
  for (let i = 0; i < body.count; i++) {
    if (i > 0) out[at++] = 0x2c; // ,
    const status = outcome.statuses[i]!;
    if (status === REJECTED) at += rejections[rejected++]!.copy(out, at);
    else {
      const entry = ENTRY_HEADS[status]!;
      at += copyBytes(entry, 0, entry.length, out, at);
      at += copyBytes(body.ids, i * EVENT_ID_CHARS, (i + 1) * EVENT_ID_CHARS, out, at);
      at += copyBytes(ENTRY_TAIL, 0, ENTRY_TAIL.length, out, at);
    }
  }
  out.write(']}', at, 'latin1');
  return out;
}

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
    // The JSON body: the bytes as sent, or a protobuf body's JSON form (rawBody then keeps the bytes for the signature).
    let raw = Buffer.isBuffer(req.body) ? req.body : req.rawBody ?? Buffer.alloc(0);
    const facts = await edge(req, reply, route, raw);
    if (!facts) return reply;
    let body: CheckedBody;
    if (raw.length >= WORKER_MIN_BYTES && checkPool?.available) {
      const checked = await checkPool.check(route, raw, facts, config.maxBatchEvents, config.busPartitions);
      body = checked.checked;
      raw = checked.raw ?? raw;
    } else body = checkBody(route, parseJsonBody(raw), facts, config.maxBatchEvents, config.busPartitions);
    metrics.ingestBatchSize.observe(body.count);
    const outcome = await ingestEvents(body, facts, route, raw);
    const names = fieldNamesOf(route);
    if (body.singular) {
      if (outcome.statuses[0] === REJECTED) {
        const e = clientError(body.errors[0]![1], names);
        return reply.code(e.code === 'forbidden_app' ? 403 : 400).send(errorBody(e.code, e.message, e.field));
      }
      return reply.code(202).send({ status: STATUS_NAMES[outcome.statuses[0]!], eventId: idAt(body, 0) });
    }
    return reply
      .code(outcome.rejected === body.count ? 400 : 202)
      .type('application/json; charset=utf-8')
      .send(batchAnswer(body, outcome, names));
  }

  app.post('/v1/events/ingest', (req, reply) => handle(req, reply, 'ingest'));
  app.post('/v1/events/batch', (req, reply) => handle(req, reply, 'batch'));
  app.post('/v1/collect', (req, reply) => handle(req, reply, 'collect'));
  // Segment's HTTP Tracking API (auth: HTTP Basic with the write key = an app key as the user name).
  for (const { path, route } of SEGMENT_ROUTES) app.post(path, (req, reply) => handle(req, reply, route));
}
